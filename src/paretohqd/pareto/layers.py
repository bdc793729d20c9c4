"""Non-dominated sorting (Pareto layers) of reward vectors, exact, and fast when only the first layers are needed.

Conventions: points are ``(n_points, n_objectives)``; rewards are maximised (``maximise=True``); ``a`` dominates
``b`` iff ``a >= b`` in every objective and ``a > b`` in at least one (moocore's weak dominance), so duplicate points
never dominate each other and always share a layer. Layer 0 is the non-dominated front. Every reported layer is
identical to ``moocore.pareto_rank(points, maximise=True)`` on that layer.

Why not just call ``moocore.pareto_rank``: for three or more objectives it peels one front at a time over the whole
array (about 5 s for 1,000,000 x 3), while ParetoHqD only needs the few layers that hold ``P_min`` points.

The fast path (``_prefiltered_layers``) is exact by construction, with randomness affecting only its speed:

1. *Upper set.* ``Q = {x : s_k(x) >= t_k for some k}`` for a few monotone scores ``s_k`` (each objective alone and a
   scaled sum). If ``b`` is in ``Q`` and ``a`` dominates ``b`` then ``s_k(a) >= s_k(b)`` (floating-point products
   by non-negative constants and sums are monotone), so ``a`` is in ``Q``: every dominance chain ending in ``Q``
   lies inside ``Q`` and the ranks computed on ``Q`` alone are the ranks in the whole set.
2. *Layer count.* The first ``L`` layers of ``Q`` are subsets of the first ``L`` layers of the whole set, so the
   smallest ``L`` at which ``Q`` reaches ``min_count`` is an upper bound on the ``L`` we need.
3. *Pivots.* A point dominated by a point of rank ``L-1`` has rank ``>= L``. One streaming pass discards every
   point that one of ``Q``'s rank ``L-1`` points (the pivots) is ``>=`` in every objective, then adds the pivots
   back: the only points that test removes without their being dominated are exact copies of a pivot, and those
   are in ``Q`` with the same rank, i.e. pivots themselves. Pivots run in greedy set-cover order over a random
   sample, so the first one or two remove almost everything.
4. *Survivors.* The survivors hold every point of rank ``< L``, and with it every dominance chain leading to such a
   point (its members have smaller rank), so ranking the survivors exactly gives the true ranks below ``L``; a
   survivor of rank ``>= L`` keeps a chain of ``L`` dominators among the survivors, so it is ranked ``>= L`` there.

The thresholds ``t_k`` come from a seeded random sample; if the upper set turns out too small (too few points, no
pivots, or a sample predicts many survivors) it is doubled, and past a quarter of the data we rank everything.
"""

from __future__ import annotations

import numpy as np

from ._validate import as_count, as_points

__all__ = ["first_layers_pool", "nondominated_layers"]

# Below this many points ranking everything with moocore takes milliseconds, so the prefilter is not worth it.
_SMALL_N = 20_000
# Fixed seed: the sample only steers speed, but a fixed seed makes timings reproducible too.
_SEED = 20250417
# Upper-set size to aim for, as a multiple of min_count (4x made the survivors nearly minimal on 1e6 x 3 Gaussians
# of every correlation tried; smaller factors often overestimate L, which makes the pivots weak).
_Q_FACTOR = 4
# How many sample points are used to order pivots and predict the number of survivors.
_GREEDY_SAMPLE = 4_000
# Peeling fronts with moocore.is_nondominated (O(n log n) each for M <= 3) beats ranking everything with
# moocore.pareto_rank (one naive front at a time) when only a few layers of a large set are needed.
_PEEL_MAX_LAYERS = 8
_PEEL_MIN_N = 50_000


def nondominated_layers(
    points: object,
    max_layers: int | None = None,
    min_count: int | None = None,
    maximise: bool = True,
) -> np.ndarray:
    """Pareto layer (0-based non-dominated sorting rank) of every point; ``-1`` for points beyond the last layer needed.

    Args:
        points: ``(n_points, n_objectives)`` array of finite numbers.
        max_layers: report at most this many layers (ranks ``0 .. max_layers-1``).
        min_count: stop after the smallest ``L`` whose first ``L`` layers together hold at least ``min_count``
            points (every layer when the whole set is smaller).
        maximise: ``True`` (the default, for rewards): larger is better in every objective. ``False`` minimises.

    Returns:
        int64 array of length ``n_points``: the layer of each point, identical to
        ``moocore.pareto_rank(points, maximise=maximise)`` wherever it is not ``-1``. With neither limit every point
        gets its layer.

    Raises:
        ValueError: points not a 2-D finite numeric array, or a limit that is not a positive integer.
    """
    X = as_points(points, "points")
    if max_layers is not None:
        max_layers = as_count(max_layers, "max_layers")
    if min_count is not None:
        min_count = as_count(min_count, "min_count")
    return layers_validated(X, max_layers, min_count, maximise)


def layers_validated(X: np.ndarray, max_layers: int | None, min_count: int | None, maximise: bool) -> np.ndarray:
    """``nondominated_layers`` for a float64 array already checked by ``as_points`` and validated limits."""
    n, m = X.shape
    if n == 0:
        return np.empty(0, dtype=np.int64)
    Y = X if maximise else -X
    if min_count is not None and min_count >= n:
        min_count = None  # every layer is needed to reach it (or it cannot be reached)

    # Internally a result is sparse, (indices, ranks) of the points ranked so far, so that a 10^7-point call that
    # keeps 2,000 points touches the full-length output array only once.
    found = None
    if m == 1:
        found = _layers_1d(Y[:, 0], min_count)
    elif n > _SMALL_N and (max_layers is not None or min_count is not None):
        found = _prefiltered_layers(Y, max_layers, min_count)
    if found is None:
        found = _exact_layers(Y, max_layers, min_count)
    idx, ranks = _cut(*found, max_layers, min_count)
    out = np.full(n, -1, dtype=np.int64)
    out[idx] = ranks
    return out


def first_layers_pool(points: object, min_count: int, maximise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The union of the first ``L`` Pareto layers, ``L`` the smallest with at least ``min_count`` points.

    ``maximise=True`` treats larger values as better (rewards). When the whole set holds fewer than ``min_count``
    points, every point is in the pool.

    Returns:
        ``(pool_indices, layer_of_pool)``: indices into ``points`` in ascending order, and the layer of each.
    """
    layers = nondominated_layers(points, min_count=min_count, maximise=maximise)
    pool = np.flatnonzero(layers >= 0)
    return pool, layers[pool]


# --------------------------------------------------------------------------------------------------------------
# exact building blocks


def _cut(
    idx: np.ndarray, ranks: np.ndarray, max_layers: int | None, min_count: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Drop every point at or beyond the stopping layer; ``ranks`` must be exact for all the points given."""
    if ranks.size == 0 or (max_layers is None and min_count is None):
        return idx, ranks
    stop = int(ranks.max()) + 1
    if min_count is not None:
        cum = np.cumsum(np.bincount(ranks))
        if cum[-1] >= min_count:
            stop = min(stop, int(np.searchsorted(cum, min_count)) + 1)
    if max_layers is not None:
        stop = min(stop, max_layers)
    keep = ranks < stop
    return idx[keep], ranks[keep]


def _sparse(ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.flatnonzero(ranks >= 0)
    return idx, ranks[idx].astype(np.int64, copy=False)


def _layers_1d(y: np.ndarray, min_count: int | None) -> tuple[np.ndarray, np.ndarray]:
    """One objective: the layers are the distinct values in descending order."""
    n = y.size
    if min_count is None:
        _, inverse = np.unique(-y, return_inverse=True)
        return np.arange(n), inverse.reshape(-1).astype(np.int64)
    # Fewer than min_count points are strictly above the min_count-th largest value, so the layers needed are
    # exactly the distinct values at or above it; a partition avoids sorting everything.
    threshold = np.partition(y, n - min_count)[n - min_count]
    keep = np.flatnonzero(y >= threshold)
    _, inverse = np.unique(-y[keep], return_inverse=True)
    return keep, inverse.reshape(-1).astype(np.int64)


def _exact_layers(Y: np.ndarray, max_layers: int | None, min_count: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``(indices, ranks)`` of ``Y`` (maximised), covering at least the layers the limits need."""
    import moocore

    n, m = Y.shape
    if m >= 3 and n >= _PEEL_MIN_N and (max_layers is not None or min_count is not None):
        ranks = _peel(Y, max_layers, min_count, _PEEL_MAX_LAYERS)
        if ranks is not None:
            return _sparse(ranks)
    return np.arange(n), np.asarray(moocore.pareto_rank(Y, maximise=True), dtype=np.int64)


def _peel(Y: np.ndarray, max_layers: int | None, min_count: int | None, give_up_after: int) -> np.ndarray | None:
    """Remove one front at a time until the limits are met; ``None`` if that takes more than ``give_up_after``."""
    import moocore

    n = Y.shape[0]
    ranks = np.full(n, -1, dtype=np.int64)
    remaining = np.arange(n)
    total = 0
    layer = 0
    while remaining.size:
        if max_layers is not None and layer >= max_layers:
            break
        if min_count is not None and total >= min_count:
            break
        if layer >= give_up_after:
            return None
        # keep_weakly=True keeps every copy of a non-dominated point, matching pareto_rank's "duplicates share a rank".
        front = np.asarray(moocore.is_nondominated(Y[remaining], maximise=True, keep_weakly=True), dtype=bool)
        ranks[remaining[front]] = layer
        total += int(front.sum())
        remaining = remaining[~front]
        layer += 1
    return ranks


def _filter_by_pivots(cols: np.ndarray, pivots: np.ndarray, enough: int) -> np.ndarray:
    """Indices of the points (columns of ``cols``, shape ``(M, n)``) that no pivot is ``>=`` in every objective.

    Non-strict on purpose: it halves the comparisons, and the only points it removes wrongly are exact copies of a
    pivot, which the caller adds back. One vectorised pass per pivot (a loop over pivots, not points); the columns
    are compacted only when half of them are dead, so a weak pivot costs one cheap pass and no copy. Stops early once
    at most ``enough`` points are left, since ranking that many exactly is cheaper than more passes.
    """
    size = cols[0].shape[0]
    idx = None  # identity until the first compaction: saves a full-length index array when nothing is removed
    alive = np.ones(size, dtype=bool)
    n_alive = size
    hit = np.empty(size, dtype=bool)
    tmp = np.empty(size, dtype=bool)
    for p in pivots:
        if n_alive <= enough:
            break
        np.less_equal(cols[0], p[0], out=hit)
        for j in range(1, len(cols)):
            np.less_equal(cols[j], p[j], out=tmp)
            hit &= tmp
        alive &= ~hit
        n_alive = int(np.count_nonzero(alive))
        if n_alive <= alive.size // 2:
            # np.compress is several times faster than boolean indexing for dense masks.
            idx = np.flatnonzero(alive) if idx is None else np.compress(alive, idx)
            cols = np.compress(alive, cols, axis=1)
            alive = np.ones(n_alive, dtype=bool)
            hit = np.empty(n_alive, dtype=bool)
            tmp = np.empty(n_alive, dtype=bool)
    return np.flatnonzero(alive) if idx is None else np.compress(alive, idx)


def _dominance_matrix(sample: np.ndarray, pivots: np.ndarray) -> np.ndarray:
    """``D[i, p]``: pivot ``p`` is ``>=`` sample point ``i`` in every objective (the filter's own test)."""
    ge = sample[:, 0, None] <= pivots[None, :, 0]
    for j in range(1, sample.shape[1]):
        ge &= sample[:, j, None] <= pivots[None, :, j]
    return ge


def _greedy_order(D: np.ndarray) -> tuple[np.ndarray, int]:
    """Pivots by greedy set cover of the sample (a loop over chosen pivots, not samples).

    Returns the pivots that cover some sample point, best first, and how many sample points no pivot covers.
    Pivots covering no sample point are left out: dropping a pivot only keeps more survivors, never loses a point.
    """
    n_sample = D.shape[0]
    counts = D.sum(axis=0)
    covered = np.zeros(n_sample, dtype=bool)
    chosen: list[int] = []
    while True:
        best = int(np.argmax(counts))
        if counts[best] <= 0:
            break
        chosen.append(best)
        new = D[:, best] & ~covered
        covered |= new
        counts -= D[new].sum(axis=0)
    return np.asarray(chosen, dtype=np.intp), int(n_sample - covered.sum())


def _upper_set_mask(cols: np.ndarray, weights: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Points with ``weights[k] . x >= thresholds[k]`` for some k (points are the columns of ``cols``).

    Elementwise numpy products and sums in one fixed order for every point (no BLAS, whose kernels may round rows
    differently) keep the score monotone, which the exactness argument needs. Chunked so temporaries stay in cache.
    """
    n = cols.shape[1]
    mask = np.empty(n, dtype=bool)
    step = 1 << 16
    score = np.empty(step)
    term = np.empty(step)
    hit = np.empty(step, dtype=bool)
    for start in range(0, n, step):
        stop = min(n, start + step)
        size = stop - start
        c = cols[:, start:stop]
        out = mask[start:stop]
        out[:] = False
        for w, t in zip(weights, thresholds):
            nz = np.flatnonzero(w)
            if nz.size == 1:
                np.greater_equal(c[nz[0]], t / w[nz[0]], out=hit[:size])
            else:
                np.multiply(c[nz[0]], w[nz[0]], out=score[:size])
                for j in nz[1:]:
                    np.multiply(c[j], w[j], out=term[:size])
                    score[:size] += term[:size]
                np.greater_equal(score[:size], t, out=hit[:size])
            out |= hit[:size]
    return mask


def _scores(points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``points @ weights.T`` without BLAS (a (n, 3) @ (3, k) product is oddly slow in OpenBLAS)."""
    out = np.zeros((points.shape[0], weights.shape[0]))
    for j in range(points.shape[1]):
        out += points[:, j, None] * weights[None, :, j]
    return out


def _prefiltered_layers(
    Y: np.ndarray, max_layers: int | None, min_count: int | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Exact ``(indices, ranks)`` of the first ``L`` layers, some ``L`` that meets the limits (see the module
    docstring); ``None`` when the upper set would have to be a large part of the data (rank everything instead)."""
    import moocore

    n, m = Y.shape
    rng = np.random.default_rng(_SEED)
    # One transposed copy (27 ms for 1e7 x 2) pays for itself: every later pass reads contiguous columns.
    cols = np.ascontiguousarray(Y.T)
    sample = Y[rng.integers(0, n, size=min(n, max(20_000, min(200_000, n // 50))))]

    # Scaled so the sum direction is not dominated by one objective's units; any positive scale keeps it monotone.
    lo, hi = np.quantile(sample, [0.01, 0.99], axis=0)
    scale = np.where(hi > lo, hi - lo, 1.0)
    weights = np.vstack([np.eye(m), np.ones((1, m))]) / scale
    sample_scores = _scores(sample, weights)  # only sets thresholds: its rounding cannot affect exactness
    greedy_sample = sample[:_GREEDY_SAMPLE]

    target = _Q_FACTOR * (min_count if min_count is not None else max(1_000, n // 1_000))
    while True:
        if 4 * target > n:
            return None
        frac = target / (n * weights.shape[0])
        thresholds = np.quantile(sample_scores, 1.0 - frac, axis=0)
        q_idx = np.flatnonzero(_upper_set_mask(cols, weights, thresholds))
        if 4 * q_idx.size > n:  # heavy ties at the top can make Q far larger than aimed for
            return None
        if q_idx.size == 0:
            target *= 2
            continue
        q_ranks = np.asarray(moocore.pareto_rank(Y[q_idx], maximise=True), dtype=np.int64)
        q_cum = np.cumsum(np.bincount(q_ranks))
        L = max_layers
        if min_count is not None:
            if q_cum[-1] < min_count:
                target *= 2
                continue
            reach = int(np.searchsorted(q_cum, min_count)) + 1
            L = reach if L is None else min(L, reach)
        assert L is not None
        if q_cum.size < L:  # Q has no point of rank L-1, hence no pivot
            target *= 2
            continue
        pivot_idx = q_idx[q_ranks == L - 1]
        pivots = Y[pivot_idx]
        useful, uncovered = _greedy_order(_dominance_matrix(greedy_sample, pivots))
        predicted = n * uncovered / greedy_sample.shape[0]
        # A good upper set leaves about as many survivors as the first L layers hold; many more means Q missed part
        # of those layers (its pivots are too few or too deep), and enlarging Q is cheaper than ranking them.
        if predicted > 8 * q_cum[L - 1] + 4 * n / greedy_sample.shape[0] and 8 * target <= n:
            target *= 2
            continue
        break

    # Filtering further stops paying once the survivors are few enough to rank in milliseconds.
    enough = max(_SMALL_N, 2 * int(q_cum[L - 1]))
    keep_idx = _filter_by_pivots(cols, pivots[useful], enough)
    # The non-strict test also removed the pivots and their exact copies (which are pivots too, being in Q with the
    # same rank); they have rank L-1 and belong to the survivors.
    keep_idx = np.union1d(keep_idx, pivot_idx)
    s_idx, s_ranks = _exact_layers(Y[keep_idx], L, None)
    below = s_ranks < L
    idx, ranks = keep_idx[s_idx[below]], s_ranks[below]
    if min_count is not None and idx.size < min_count and (max_layers is None or max_layers > L):
        return None  # cannot happen (Q's count is a lower bound); refuse rather than return a short pool
    return idx, ranks
