"""Scoring: every sample gets one raw reward per objective, in length-sorted batches, checked finite.

``score_frame`` scores a whole table through a cache of shards named by their content (the objective's identity
and the rows' content): an interrupted call resumes without rescoring finished shards, an edited row rescores only
its shard, and a changed objective never reuses stale scores. The run's main scoring declares the same shards as
pipeline units instead, so that they can be scheduled one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import io
from ..data import fingerprint
from ..errors import UserError, first_line
from ..pareto import first_non_finite
from .base import Objective, as_scores

STAT_QUANTILES = (0.001, 0.01, 0.5, 0.99, 0.999)


def length_sorted_batches(lengths: np.ndarray, batch_size: int, sort: bool = True) -> list[np.ndarray]:
    """Index batches; sorting by length (longest first, so memory peaks show up at once) cuts padding."""
    order = np.argsort(-lengths, kind="stable") if sort else np.arange(len(lengths))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def text_lengths(samples: pd.DataFrame) -> np.ndarray:
    """Characters of prompt plus response, per sample."""
    return (samples["prompt"].str.len() + samples["response"].str.len()).to_numpy()


def score_batches(objective: Objective, samples: pd.DataFrame, batch_size: int, sort: bool = True,
                  progress=None, share: tuple[int, int] = (0, 1)) -> np.ndarray:
    """``share`` = (rank, world_size): score only the batches whose number is ``rank`` modulo ``world_size`` (one
    process's share of the very batches a single process forms, so that merged shares are bit-identical to one
    process's scores; dealt out in turn, every process gets long and short batches alike); other rows stay NaN."""
    rank, world_size = share
    scores = np.full(len(samples), np.nan)
    for indices in length_sorted_batches(text_lengths(samples), batch_size, sort)[rank::world_size]:
        scores[indices] = as_scores(objective.score(samples.iloc[indices]), len(indices), objective.name)
        if progress is not None:
            progress.update(len(indices))
    return scores


def merge_shares(shares: Sequence[np.ndarray], samples: pd.DataFrame, batch_size: int,
                 sort: bool = True) -> np.ndarray:
    """The scores of every process's :func:`score_batches` share (in rank order), each row taken from the process
    whose batch holds it (a NaN an objective returned stays a NaN, for the finite check to name)."""
    if len(shares) == 1:
        return shares[0]
    owner = np.empty(len(samples), dtype=np.int64)
    for number, indices in enumerate(length_sorted_batches(text_lengths(samples), batch_size, sort)):
        owner[indices] = number % len(shares)
    return np.stack(shares)[owner, np.arange(len(samples))]


def check_scores_finite(scores: np.ndarray, samples: pd.DataFrame, objective: str, offset: int | None = None) -> None:
    found = first_non_finite(scores)
    if found is not None:
        row, _, kind = found
        kind = "NaN" if kind == "NaN" else "an infinite score"
        where = f" (row {offset + row})" if offset is not None else ""
        raise UserError(f"objective '{objective}' returned {kind} for sample '{samples['id'].iloc[row]}'"
                        f"{where}; scores must be finite numbers")


def score_rows(objective: Objective, rows: pd.DataFrame, batch_size: int, sort: bool = True, progress=None,
               offset: int | None = None, share: tuple[int, int] = (0, 1),
               gather: Callable[[Any], list] | None = None) -> np.ndarray:
    """One objective's finite scores for some rows (a shard). With ``share`` (rank, world_size) and ``gather``
    (every process's value on every process) the processes of a launch score their shares of the batches and all
    get the merged scores."""
    if share[1] > 1 and gather is None:
        raise ValueError("scoring a share of the batches needs gather to merge the shares")
    scores = score_batches(objective, rows, batch_size, sort, progress, share)
    if share[1] > 1:
        scores = merge_shares(gather(scores), rows, batch_size, sort)
    check_scores_finite(scores, rows, objective.name, offset=offset)
    return scores


def length_spread(lengths: np.ndarray, count: int) -> np.ndarray:
    """Positions of up to ``count`` samples spread from the shortest to the longest, ascending."""
    by_length = np.argsort(lengths, kind="stable")
    return np.unique(by_length[np.linspace(0, len(lengths) - 1, min(count, len(lengths))).round().astype(int)])


CONSISTENCY_TOLERANCE = {"float32": 1e-3, "bfloat16": 2.0 ** -5, "float16": 2.0 ** -8}
"""The self-check's default tolerance by scoring dtype, relative to the scores' scale: four units in the last place
of the half-precision formats (bfloat16 2^-7, float16 2^-10), whose rounding a change of batch reorders."""


def consistency_tolerance(dtype: str, given: float | None = None) -> float:
    return float(given) if given is not None else CONSISTENCY_TOLERANCE.get(dtype, CONSISTENCY_TOLERANCE["float32"])


def check_batch_invariance(objective: Objective, samples: pd.DataFrame, count: int, batch_size: int,
                           tolerance: float, dtype: str = "float32") -> float:
    """Score ``count`` samples of spread-out lengths batched and one at a time; fail loudly if they differ.

    Returns the largest absolute difference seen. Differences beyond ``tolerance`` (relative to the score scale)
    mean padding or batching leaks into the reward: a wrong pad token or padding side, usually; in a half-precision
    ``dtype`` a difference within a few times its rounding may be rounding, and the error says so.
    """
    if count <= 0 or len(samples) == 0:
        return 0.0
    subset = samples.iloc[length_spread(text_lengths(samples), count)]
    from .embeddings import embedding_cache_disabled

    # Both passes must really run the model: a cache would answer the second from the first.
    with embedding_cache_disabled():
        batched = score_rows(objective, subset, max(batch_size, len(subset)), sort=False)
        single = np.array([as_scores(objective.score(subset.iloc[[i]]), 1, objective.name)[0]
                           for i in range(len(subset))])
    difference = np.abs(batched - single)
    scale = max(1.0, float(np.max(np.abs(batched))))
    worst = int(np.nanargmax(difference)) if np.isfinite(difference).any() else int(np.argmin(np.isfinite(single)))
    if not np.all(np.isfinite(difference)) or difference[worst] > tolerance * scale:
        relative = difference[worst] / scale
        half = dtype in CONSISTENCY_TOLERANCE and dtype != "float32"
        rounding = half and relative <= 2 * CONSISTENCY_TOLERANCE[dtype]
        cause = (f"a difference of {relative:.2g} of the scores' scale is what {dtype} rounding can make (score in "
                 f"float32, or raise score.consistency_tolerance above {tolerance:g})" if rounding
                 else "rewards depend on batching or padding (check the pad token and padding side)")
        raise UserError(f"objective '{objective.name}' scores sample '{subset['id'].iloc[worst]}' as "
                        f"{batched[worst]:.6g} in a batch but {single[worst]:.6g} alone: {cause}")
    return float(np.nanmax(difference))


def score_statistics(scores: pd.DataFrame, names: list[str]) -> dict:
    """Per-objective statistics saved beside the scores (RiC's z-scores read them; selection records its own)."""
    values = scores[names].to_numpy(dtype=np.float64)
    return {
        "objectives": names,
        "count": len(values),
        "min": values.min(axis=0).tolist(),
        "max": values.max(axis=0).tolist(),
        "mean": values.mean(axis=0).tolist(),
        "std": values.std(axis=0).tolist(),
        "quantiles": {str(q): row.tolist() for q, row in zip(STAT_QUANTILES,
                                                              np.quantile(values, STAT_QUANTILES, axis=0))},
    }


def shard_key(identity: dict[str, Any], rows: pd.DataFrame) -> str:
    """What a shard's scores depend on: the objective's identity and the content of its rows."""
    return io.digest({"objective": identity, "rows": fingerprint(rows)})


def score_frame(samples: pd.DataFrame, objectives: Sequence[Objective], identities: Sequence[dict],
                batch_sizes: Sequence[int], cache_dir: Path, shard_size: int, sort_by_length: bool = True,
                show_progress: bool = False, share: tuple[int, int] = (0, 1),
                gather: Callable[[Any], list] | None = None) -> pd.DataFrame:
    """``samples`` with one column per objective; shards come from and go to ``cache_dir``. With ``share`` and
    ``gather`` (see :func:`score_rows`) the processes of a launch score each missing shard together, every one
    gets the whole table, and rank 0 alone writes the shards."""
    from tqdm.auto import tqdm

    table = samples.copy()
    starts = range(0, len(samples), shard_size)
    paths = [[Path(cache_dir) / objective.name / f"{shard_key(identity, samples.iloc[start:start + shard_size])}.npy"
              for start in starts] for objective, identity in zip(objectives, identities)]
    # Looked up before any process writes a shard, so that every process scores (and gathers) the same shards.
    cached = [[path.exists() for path in row] for row in paths]
    for objective, batch_size, shard_paths, found in zip(objectives, batch_sizes, paths, cached):
        values = []
        with tqdm(total=len(samples), desc=f"score {objective.name}", unit="sample", disable=not show_progress,
                  leave=False) as progress:
            for start, path, exists in zip(starts, shard_paths, found):
                rows = samples.iloc[start:start + shard_size]
                if exists:
                    values.append(load_scores(path, len(rows)))
                    progress.update(len(rows))
                    continue
                scores = score_rows(objective, rows, batch_size, sort_by_length, progress, offset=start,
                                    share=share, gather=gather)
                if share[0] == 0:
                    save_scores(path, scores)
                values.append(scores)
        table[objective.name] = np.concatenate(values) if values else np.zeros(0)
    return table


def save_scores(path: Path, scores: np.ndarray) -> None:
    with io.atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, scores)


def load_scores(path: Path, expected: int | None = None) -> np.ndarray:
    """A score shard as written by :func:`save_scores`: a plain float array (never a pickle), of ``expected``
    scores when given; anything else is one sentence saying which file to delete."""
    try:
        scores = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f"score shard '{path}' is not a plain array of scores ({first_line(exc, 200)}); "
                        "delete it and it is scored again") from None
    if scores.dtype.kind != "f" or scores.ndim != 1 or (expected is not None and len(scores) != expected):
        raise UserError(f"score shard '{path}' holds {scores.dtype} scores of shape {scores.shape}, not "
                        f"{expected if expected is not None else 'a vector of'} floats; delete it and it is scored "
                        "again")
    return scores
