"""The ParetoHqD selection over scores that do not fit in memory at once, read as a stream of ``(n_chunk, M)`` chunks.

:func:`select_for_preferences_chunked` returns exactly what :func:`~paretohqd.pareto.select.select_for_preferences`
returns on the concatenated chunks (same pool indices and layers, same per-preference indices in the same order, same
distances and normalisation statistics), while holding only one chunk plus a small candidate set.

Why it is exact (rewards maximised; a point's *layer* is its non-dominated sorting rank, 0 = non-dominated):

1. *Subsets never deepen a point.* A dominance chain inside a subset is a chain in the full set, so a point's layer
   within any subset is <= its layer in the full set.
2. *Running candidates.* With a bound ``L*``, every merge of the candidates with the next chunk keeps the points
   whose layer within that union is ``< L*``. By (1) a point of global layer ``< L*`` is never dropped, and neither
   is anything that dominates it (smaller global layer). So after the pass the candidates hold every point of
   global layer ``< L*`` together with all its dominators, and their layers among the candidates are the global
   ones; a point of global layer ``>= L*`` keeps a chain of ``L*`` dominators among them and is dropped.
3. *Check, else redo.* If the candidates' first ``L*`` layers reach ``min(min_pool, n)`` points, the smallest ``L``
   that does so is the global pool's ``L`` and the pool is exact; otherwise the pass is redone with a larger ``L*``
   (at least doubled), which is why the chunks must be readable more than once when that happens.

Normalisation: ``minmax`` statistics are a running per-objective min and max (exact: min and max do not depend on
the order). ``robust`` is supported exactly with one extra pass: once ``n`` is known, the order statistics that
``np.quantile`` (method ``linear``) interpolates between lie among the ``floor(q_lo (n - 1)) + 2`` smallest and the
``n - floor(q_hi (n - 1))`` largest values of each objective, kept with a running partition; memory for them is
about ``(q_lo + 1 - q_hi) * n`` floats per objective (0.2% of n with the default quantiles), not a full column.

Distances and the k-nearest choice are the in-memory code itself (:func:`select_from_pool`) run on the pool's raw
points in ascending global-index order, so ties are broken by global index exactly as in memory.

Imports only numpy (``tests/test_layers.py`` holds pareto/ to numpy and moocore): a Parquet file is read into chunks
by the caller, e.g. ``pyarrow.parquet.ParquetFile(path).iter_batches(columns=...)`` as ``bench/load.py`` does.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ._validate import as_count, first_non_finite, objective_label
from .directions import validate_preferences
from .layers import layers_validated
from .normalise import METHODS, NormalisationStats, check_quantiles
from .select import SELECTION_METRICS, CandidatePool, Selection, default_min_pool, select_from_pool

__all__ = ["ChunkedPool", "chunked_candidate_pool", "select_for_preferences_chunked"]

ChunkSource = Callable[[], Iterable[object]] | Iterable[object]
"""Score chunks: a function returning a fresh iterable of ``(n_chunk, M)`` arrays each time it is called (a second
pass is then always possible), or an iterable such as a list of arrays (a one-shot iterator or generator works only
while no second pass is needed)."""

# Without a bound given, L* starts at this multiple of the layers the first chunk alone needs (chunks of one data
# set usually need fewer layers together than apart: fronts grow with n) and never below _MIN_LAYER_BOUND.
_BOUND_FACTOR = 2
_MIN_LAYER_BOUND = 8


@dataclass(frozen=True)
class ChunkedPool:
    """The candidate pool of the whole stream, and what it cost to find it.

    Attributes:
        pool: exactly ``candidate_pool`` of all points: global indices (ascending), layers, L, statistics.
        pool_points: the raw ``(pool_size, M)`` scores of the pool members, in ``pool.indices`` order.
        n_points: number of scored points in the stream.
        passes: passes over the stream (one per layer bound tried, plus one for ``robust`` quantiles).
        layer_bound: the bound ``L*`` of the pass that succeeded (>= ``pool.num_layers``).
        max_candidates: the largest candidate set held between chunks (memory beyond one chunk scales with it).
    """

    pool: CandidatePool
    pool_points: np.ndarray
    n_points: int
    passes: int
    layer_bound: int
    max_candidates: int


def select_for_preferences_chunked(
    chunks: ChunkSource,
    weights: object,
    k: int = 100,
    min_pool: int | None = None,
    normalisation: str = "minmax",
    quantiles: tuple[float, float] | Sequence[float] = (0.001, 0.999),
    metric: str = "perpendicular",
    stats: NormalisationStats | Mapping[str, object] | None = None,
    maximise: bool = True,
    names: Sequence[str] | None = None,
    layer_bound: int | None = None,
) -> Selection:
    """:func:`~paretohqd.pareto.select.select_for_preferences` over a stream of score chunks, in bounded memory.

    Args:
        chunks: ``(n_chunk, M)`` raw reward arrays in global order (see ``ChunkSource``); empty chunks are skipped.
        layer_bound: first bound ``L*`` on the layers kept between chunks; ``None`` guesses from the first chunk.
            It only affects speed and memory: a bound that turns out too small costs one more pass.
        Every other argument as in ``select_for_preferences``; the result (indices global) is identical to it.

    Raises:
        ValueError: as ``select_for_preferences`` (row numbers in messages are global), or a one-shot iterator
        given where a second pass is needed.
    """
    k = as_count(k, "k")
    if metric not in SELECTION_METRICS:
        raise ValueError(f"metric must be one of {', '.join(SELECTION_METRICS)}, got {metric!r}")
    found = chunked_candidate_pool(chunks, min_pool=min_pool, normalisation=normalisation, quantiles=quantiles,
                                   stats=stats, maximise=maximise, names=names, layer_bound=layer_bound,
                                   weights=weights, k=k)
    pool = found.pool
    # The in-memory checks, with the in-memory messages: n is the whole stream, not the points kept.
    if k > found.n_points:
        raise ValueError(f"k={k} is larger than the candidate pool of {found.n_points} samples")
    if pool.indices.size < k:
        raise ValueError(
            f"k={k} is larger than the candidate pool of {pool.indices.size} samples (the first {pool.num_layers} "
            f"Pareto layers, min_pool={pool.min_pool}); raise min_pool or lower k"
        )
    # The in-memory selection on the pool's own points: distances are computed row by row on the same rows in the
    # same order, and ties go to the smaller position, which is the smaller global index (the pool is ascending).
    local_pool = dataclasses.replace(pool, indices=np.arange(pool.indices.size, dtype=np.int64))
    local = select_from_pool(found.pool_points, local_pool, weights, k=k, metric=metric, names=names)
    results = tuple(dataclasses.replace(r, indices=pool.indices[r.indices]) for r in local.results)
    return dataclasses.replace(local, results=results, pool_indices=pool.indices)


def chunked_candidate_pool(
    chunks: ChunkSource,
    min_pool: int | None = None,
    normalisation: str = "minmax",
    quantiles: tuple[float, float] | Sequence[float] = (0.001, 0.999),
    stats: NormalisationStats | Mapping[str, object] | None = None,
    maximise: bool = True,
    names: Sequence[str] | None = None,
    layer_bound: int | None = None,
    weights: object | None = None,
    k: int = 0,
) -> ChunkedPool:
    """:func:`~paretohqd.pareto.select.candidate_pool` of a stream of score chunks (arguments as there and in
    :func:`select_for_preferences_chunked`; ``weights``, when given, are validated as soon as M is known so that a
    bad preference fails before a long pass)."""
    if stats is None and normalisation not in METHODS:
        raise ValueError(f"normalisation must be one of {', '.join(METHODS)}, got {normalisation!r}")
    robust_quantiles = check_quantiles(quantiles) if stats is None and normalisation == "robust" else None
    if stats is not None and not isinstance(stats, NormalisationStats):
        stats = NormalisationStats.from_dict(stats)
    if min_pool is not None:
        min_pool = as_count(min_pool, "min_pool")
    bound = None if layer_bound is None else as_count(layer_bound, "layer_bound")
    reader = _Reader(chunks, names)
    if robust_quantiles is not None:  # fail before a long first pass, not after it
        reader.require_second_pass("robust normalisation needs exact quantiles")

    def check_objectives(m: int) -> None:  # at the first chunk, so that bad settings fail before a long pass
        if weights is not None:
            validate_preferences(weights, m)
        if stats is not None and stats.n_objectives != m:
            raise ValueError(f"normalisation stats have {stats.n_objectives} objectives but the scores have {m}")

    passes = n = 0
    while True:
        passes += 1
        scan = _scan(reader, bound, min_pool, k, maximise, check_objectives if passes == 1 else None)
        if passes > 1 and scan.n_points != n:
            raise ValueError(f"the score chunks held {n} rows on the first pass and {scan.n_points} on pass "
                             f"{passes}: the source must yield the same data on every pass")
        n, m = scan.n_points, scan.n_objectives
        pool_min = default_min_pool(n, k) if min_pool is None else min_pool
        needed = min(pool_min, n)
        counts = np.cumsum(np.bincount(scan.layers)) if scan.layers.size else np.zeros(1, dtype=np.int64)
        if counts[-1] >= needed:
            break
        # Too few points within L* layers: the pool needs more layers. Guess from how far we got, at least double.
        reached = max(int(counts[-1]), 1)
        bound = max(2 * scan.bound, math.ceil(1.25 * scan.bound * needed / reached))
        reader.require_second_pass(f"the first {scan.bound} Pareto layers held {int(counts[-1])} of the "
                                   f"{needed} pool samples needed")

    num_layers = int(np.searchsorted(counts, needed)) + 1  # as layers.py's _cut: smallest L reaching the count
    in_pool = scan.layers < num_layers
    if stats is None:
        if robust_quantiles is None:
            stats = NormalisationStats("minmax", scan.low, scan.high, None)
        else:
            passes += 1
            stats = _robust_stats(reader, n, m, robust_quantiles, scan.low, scan.high)
    pool = CandidatePool(scan.indices[in_pool], scan.layers[in_pool], num_layers, stats, pool_min, bool(maximise))
    return ChunkedPool(pool, scan.points[in_pool], n, passes, scan.bound, scan.max_candidates)


# --------------------------------------------------------------------------------------------------------------


class _Reader:
    """Hands out passes over the chunk source, each chunk as a checked float64 array with its global offset."""

    def __init__(self, chunks: ChunkSource, names: Sequence[str] | None) -> None:
        self._chunks = chunks
        self._names = names
        self._n_objectives: int | None = None

    def require_second_pass(self, why: str) -> None:
        if not callable(self._chunks) and iter(self._chunks) is self._chunks:  # type: ignore[arg-type]
            raise ValueError(f"a second pass over the score chunks is needed ({why}), but they were given as a "
                             "one-shot iterator: pass a function that returns a fresh iterator (for a Parquet file, "
                             "one that opens it and yields its batches) or a list of arrays")

    def passes(self) -> Iterator[tuple[int, np.ndarray]]:
        source = self._chunks() if callable(self._chunks) else self._chunks
        offset = 0
        for chunk in source:
            X = self._checked(chunk, offset)
            if X.shape[0]:
                yield offset, X
            offset += X.shape[0]

    def _checked(self, chunk: object, offset: int) -> np.ndarray:
        X = np.asarray(chunk)
        if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool) \
                or np.issubdtype(X.dtype, np.complexfloating):
            raise ValueError(f"score chunks must be real numbers, got dtype {X.dtype} (chunk at row {offset})")
        if X.ndim != 2 or X.shape[1] == 0:
            raise ValueError(f"score chunks must be 2-D arrays (n_chunk, n_objectives), got shape {X.shape} "
                             f"(chunk at row {offset})")
        if self._n_objectives is None:
            if self._names is not None and len(self._names) != X.shape[1]:
                raise ValueError(f"scores has {X.shape[1]} objective columns but {len(self._names)} objective names "
                                 "were given")
            self._n_objectives = X.shape[1]
        elif X.shape[1] != self._n_objectives:
            raise ValueError(f"score chunk at row {offset} has {X.shape[1]} objectives, earlier chunks "
                             f"{self._n_objectives}")
        X = np.asarray(X, dtype=np.float64)
        bad = first_non_finite(X)
        if bad is not None:  # the in-memory message, with the row counted over the whole stream
            row, column, kind = bad
            raise ValueError(f"scores contain {kind} in {objective_label(column, self._names)} (row {offset + row})")
        return X


@dataclass
class _Scan:
    indices: np.ndarray  # global indices of the candidates, ascending
    points: np.ndarray  # their raw scores
    layers: np.ndarray  # their layers (exact global layers, all < bound)
    low: np.ndarray  # per-objective running min over every point
    high: np.ndarray  # per-objective running max
    n_points: int
    n_objectives: int
    bound: int
    max_candidates: int


def _scan(reader: _Reader, bound: int | None, min_pool: int | None, k: int, maximise: bool,
          check_objectives: Callable[[int], None] | None) -> _Scan:
    """One pass: running min/max, and the running candidates (layer < bound within each merged union)."""
    indices = points = layers = low = high = None
    n = m = max_candidates = 0
    for offset, X in reader.passes():
        if points is None:
            m = X.shape[1]
            if check_objectives is not None:
                check_objectives(m)
            if bound is None:
                # a guess (speed only): n is not known before the pass ends
                bound = _first_bound(X, default_min_pool(len(X), k) if min_pool is None else min_pool, maximise)
            indices, points, layers = np.empty(0, np.int64), np.empty((0, m)), np.empty(0, np.int64)
            low, high = np.full(m, np.inf), np.full(m, -np.inf)
        # Column by column: numpy's axis-0 reductions of a tall (n, 2) array are much slower than 1-D ones.
        low = np.minimum(low, [X[:, j].min() for j in range(m)])
        high = np.maximum(high, [X[:, j].max() for j in range(m)])
        union = np.concatenate([points, X])
        union_layers = layers_validated(union, bound, None, maximise)
        kept = np.flatnonzero(union_layers >= 0)
        # Candidates come first and have smaller global indices than this chunk, so the order stays ascending.
        indices = np.concatenate([indices, offset + np.arange(X.shape[0], dtype=np.int64)])[kept]
        points, layers = union[kept], union_layers[kept]
        n = offset + X.shape[0]
        max_candidates = max(max_candidates, int(kept.size))
    if points is None:
        raise ValueError("scores is empty (0 rows)")
    assert bound is not None and low is not None and high is not None
    return _Scan(indices, points, layers, low, high, n, m, bound, max_candidates)


def _first_bound(X: np.ndarray, pool_min: int, maximise: bool) -> int:
    """A guess at L*: a few times the layers the first chunk alone needs to hold the pool."""
    chunk_layers = layers_validated(X, None, min(pool_min, X.shape[0]), maximise)
    return max(_MIN_LAYER_BOUND, _BOUND_FACTOR * (int(chunk_layers.max()) + 1))


def _robust_stats(reader: _Reader, n: int, m: int, quantiles: tuple[float, float], low_all: np.ndarray,
                  high_all: np.ndarray) -> NormalisationStats:
    """``fit_normalisation(points, 'robust', quantiles)`` of the whole stream, from one more pass."""
    # The order statistics np.quantile(column, quantiles) interpolates between (its 'linear' method).
    virtual = (n - 1) * np.asarray(quantiles, dtype=np.float64)
    previous = np.floor(virtual)
    above = virtual >= n - 1  # numpy then takes the maximum (index -1) for both neighbours
    previous_rank = np.where(above, n - 1, previous).astype(np.int64)
    next_rank = np.where(above, n - 1, previous + 1).astype(np.int64)
    n_smallest = int(max(previous_rank[0], next_rank[0])) + 1
    n_largest = n - int(min(previous_rank[1], next_rank[1]))
    smallest = [np.empty(0) for _ in range(m)]
    largest = [np.empty(0) for _ in range(m)]
    rows = 0
    for _, X in reader.passes():
        rows += X.shape[0]
        for j in range(m):  # loop over objectives; each step is a vectorised partition of the chunk's column
            smallest[j] = _keep_smallest(np.concatenate([smallest[j], X[:, j]]), n_smallest)
            largest[j] = -_keep_smallest(-np.concatenate([largest[j], X[:, j]]), n_largest)
    if rows != n:
        raise ValueError(f"the score chunks held {n} rows on the first pass and {rows} on the second: the source "
                         "must yield the same data on every pass")
    low, high = np.empty(m), np.empty(m)
    # numpy's gamma: virtual - previous index, with the index -1 when it took the maximum.
    gamma = virtual - np.where(above, -1.0, previous)
    for j in range(m):
        ascending_low, ascending_high = np.sort(smallest[j]), np.sort(largest[j])
        lo_pair = ascending_low[[previous_rank[0], next_rank[0]]]
        hi_pair = ascending_high[[previous_rank[1] - (n - n_largest), next_rank[1] - (n - n_largest)]]
        a = np.array([lo_pair[0], hi_pair[0]])
        b = np.array([lo_pair[1], hi_pair[1]])
        low[j], high[j] = _numpy_lerp(a, b, gamma)
    # fit_validated's fallback: an objective whose quantiles coincide but which is not constant keeps min and max.
    degenerate = high <= low
    return NormalisationStats("robust", np.where(degenerate, low_all, low), np.where(degenerate, high_all, high),
                              quantiles)


def _keep_smallest(values: np.ndarray, count: int) -> np.ndarray:
    if values.size <= count:
        return values
    return np.partition(values, count - 1)[:count]


def _numpy_lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """numpy's quantile interpolation, operation for operation (numpy 2.x ``_lerp``), so results match bit for bit:
    ``a + (b - a) t``, computed from ``b`` for ``t >= 0.5``."""
    diff = b - a
    out = a + diff * t
    return np.where(t >= 0.5, b - diff * (1 - t), out)
