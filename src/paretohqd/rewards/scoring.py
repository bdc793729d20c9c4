"""The score stage: every sample gets one raw reward per objective.

Work is split into shards of ``score.shard_size`` samples; each (objective, shard) is scored in length-sorted
batches and written atomically to a cache folder keyed by the objective's fingerprint and the data, so an
interrupted run resumes without rescoring finished shards and a changed objective never reuses stale scores.
Shards are independent units: ``rank``/``world_size`` let several processes split them.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..errors import UserError
from .base import Objective, as_scores


def data_fingerprint(samples: pd.DataFrame) -> str:
    """Every column counts: objectives may read more than prompt and response (a context column, a rating)."""
    hashed = pd.util.hash_pandas_object(samples.astype(str), index=False).to_numpy()
    names = "|".join(map(str, samples.columns)).encode()
    return hashlib.sha256(hashed.tobytes() + names).hexdigest()[:16]


def cache_key(objective: Objective, data_hash: str, shard_size: int) -> str:
    identity = json.dumps({"objective": objective.fingerprint(), "data": data_hash, "shard_size": shard_size},
                          sort_keys=True, default=str)
    return f"{objective.name}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


def length_sorted_batches(lengths: np.ndarray, batch_size: int, sort: bool = True) -> list[np.ndarray]:
    """Index batches; sorting by length (longest first, so memory peaks show up at once) cuts padding."""
    order = np.argsort(-lengths, kind="stable") if sort else np.arange(len(lengths))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def score_batches(objective: Objective, samples: pd.DataFrame, batch_size: int, sort: bool = True,
                  progress=None) -> np.ndarray:
    lengths = (samples["prompt"].str.len() + samples["response"].str.len()).to_numpy()
    scores = np.empty(len(samples), dtype=np.float64)
    for indices in length_sorted_batches(lengths, batch_size, sort):
        scores[indices] = as_scores(objective.score(samples.iloc[indices]), len(indices), objective.name)
        if progress is not None:
            progress.update(len(indices))
    return scores


def check_finite(scores: np.ndarray, samples: pd.DataFrame, objective: str, offset: int | None = None) -> None:
    bad = ~np.isfinite(scores)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        kind = "NaN" if np.isnan(scores[row]) else "an infinite score"
        where = f" (row {offset + row})" if offset is not None else ""
        raise UserError(f"objective '{objective}' returned {kind} for sample '{samples['id'].iloc[row]}'"
                        f"{where}; scores must be finite numbers")


def check_batch_invariance(objective: Objective, samples: pd.DataFrame, count: int, batch_size: int,
                           tolerance: float) -> float:
    """Score ``count`` samples of spread-out lengths batched and one at a time; fail loudly if they differ.

    Returns the largest absolute difference seen. Differences beyond ``tolerance`` (relative to the score scale)
    mean padding or batching leaks into the reward: a wrong pad token or padding side, usually.
    """
    if count <= 0 or len(samples) == 0:
        return 0.0
    lengths = (samples["prompt"].str.len() + samples["response"].str.len()).to_numpy()
    by_length = np.argsort(lengths, kind="stable")
    picks = np.unique(by_length[np.linspace(0, len(samples) - 1, min(count, len(samples))).round().astype(int)])
    subset = samples.iloc[picks]
    from .embeddings import embedding_cache_disabled

    # Both passes must really run the model: a cache would answer the second from the first.
    with embedding_cache_disabled():
        batched = score_batches(objective, subset, max(batch_size, len(subset)), sort=False)
        check_finite(batched, subset, objective.name)
        single = np.array([as_scores(objective.score(subset.iloc[[i]]), 1, objective.name)[0]
                           for i in range(len(subset))])
    difference = np.abs(batched - single)
    scale = max(1.0, float(np.max(np.abs(batched))))
    worst = int(np.nanargmax(difference)) if np.isfinite(difference).any() else int(np.argmin(np.isfinite(single)))
    if not np.all(np.isfinite(difference)) or difference[worst] > tolerance * scale:
        raise UserError(f"objective '{objective.name}' scores sample '{subset['id'].iloc[worst]}' as "
                        f"{batched[worst]:.6g} in a batch but {single[worst]:.6g} alone: rewards depend on batching "
                        "or padding (check the pad token and padding side)")
    return float(np.nanmax(difference))


def score_objective(objective: Objective, samples: pd.DataFrame, cache_dir: Path, batch_size: int,
                    shard_size: int, sort_by_length: bool = True, show_progress: bool = True,
                    rank: int = 0, world_size: int = 1) -> np.ndarray | None:
    """Score all shards this rank owns (skipping cached ones); return every score once all shards exist."""
    from tqdm.auto import tqdm

    cache_dir.mkdir(parents=True, exist_ok=True)
    n = len(samples)
    shard_starts = range(0, n, shard_size)
    todo = [(i, s) for i, s in enumerate(shard_starts)
            if i % world_size == rank and not _shard_path(cache_dir, i).exists()]
    remaining = sum(min(shard_size, n - start) for _, start in todo)
    with tqdm(total=remaining, desc=f"score {objective.name}", unit="sample", disable=not show_progress,
              leave=False) as progress:
        for shard, start in todo:
            part = samples.iloc[start:start + shard_size]
            scores = score_batches(objective, part, batch_size, sort_by_length, progress)
            check_finite(scores, part, objective.name, offset=start)
            with io.atomic_path(_shard_path(cache_dir, shard)) as tmp:
                with open(tmp, "wb") as handle:
                    np.save(handle, scores)
    paths = [_shard_path(cache_dir, i) for i in range(len(shard_starts))]
    if not all(path.exists() for path in paths):
        return None  # other ranks still own some shards
    return np.concatenate([np.load(path) for path in paths])


def _shard_path(cache_dir: Path, shard: int) -> Path:
    return cache_dir / f"shard_{shard:06d}.npy"


def score_statistics(scores: pd.DataFrame, names: list[str], robust_quantiles: tuple[float, float]) -> dict:
    """Per-objective statistics saved beside the scores (selection and RiC's z-scores read them)."""
    values = scores[names].to_numpy(dtype=np.float64)
    low_q, high_q = np.quantile(values, robust_quantiles, axis=0)
    return {
        "objectives": names,
        "count": int(len(values)),
        "min": values.min(axis=0).tolist(),
        "max": values.max(axis=0).tolist(),
        "mean": values.mean(axis=0).tolist(),
        "std": values.std(axis=0).tolist(),
        "robust_quantiles": list(robust_quantiles),
        "quantile_low": low_q.tolist(),
        "quantile_high": high_q.tolist(),
    }


def score_samples(samples: pd.DataFrame, objectives: list[Objective], batch_sizes: list[int], cache_root: Path,
                  shard_size: int, sort_by_length: bool = True, consistency_check: int = 8,
                  consistency_tolerance: float = 1e-3, show_progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """Score ``samples`` with every objective; returns the scores table and timing/consistency details."""
    data_hash = data_fingerprint(samples)
    details: dict = {"data_fingerprint": data_hash, "objectives": {}}
    table = samples.copy()
    for objective, batch_size in zip(objectives, batch_sizes):
        cache_dir = cache_root / cache_key(objective, data_hash, shard_size)
        start = time.perf_counter()
        check_file = cache_dir / "batch_invariance.json"
        if consistency_check and not check_file.exists():
            worst = check_batch_invariance(objective, samples, consistency_check, batch_size, consistency_tolerance)
            io.write_json(check_file, {"samples": consistency_check, "max_abs_difference": worst})
        values = score_objective(objective, samples, cache_dir, batch_size, shard_size, sort_by_length,
                                 show_progress)
        assert values is not None
        table[objective.name] = values
        details["objectives"][objective.name] = {
            "cache": cache_dir.name, "seconds": time.perf_counter() - start,
            "batch_invariance": io.read_json(check_file) if check_file.exists() else None,
            "fingerprint": objective.fingerprint()}
    return table, details
