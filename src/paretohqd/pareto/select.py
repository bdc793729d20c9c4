"""ParetoHqD data selection: normalise, take the first Pareto layers as the pool, pick the k samples nearest each
preference's ray (docs/concepts/selection.md).

Deterministic: the same scores and settings always select the same samples in the same order (distance ascending,
ties broken by the sample's index).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validate import as_count, as_points
from .directions import METRICS, preference_direction, ray_distance, validate_preferences
from .layers import layers_validated
from .normalise import METHODS, NormalisationStats, check_quantiles, fit_validated

__all__ = [
    "SELECTION_METRICS",
    "CandidatePool",
    "Selection",
    "SelectionResult",
    "candidate_pool",
    "default_k",
    "default_min_pool",
    "select_for_preferences",
    "select_from_pool",
]

SELECTION_METRICS = (*METRICS, "weighted_sum")
"""The ray metrics, and ``weighted_sum``: the k pool samples with the highest w . z (the scalarisation the ray
replaces; its "distance" is -w . z). The ablation that shows what the ray buys on concave fronts."""


POOL_FRACTION = 2_000 / 320_000
"""The paper's pool share: P_min 2,000 of its ~320,000 samples (0.625%)."""
POOL_PER_K = 5.0
"""The pool never holds fewer than this many times k samples. Measured on the 5,550 HH-RLHF samples with k 100 and
11 preferences (``bench/ray_vs_weighted_sum.py``'s measures): at 2x, 45% of the preferences select the same set as
a neighbour; at 5x none does, and the selections' mean Pareto layer is 5.2 (11.5 at the paper's fixed 2,000)."""


K_FRACTION = 100 / 320_000
"""The paper's k as a share of its data: 100 samples per preference of ~320,000."""
K_MIN = 100
"""The fewest samples the rule gives a preference (the paper's k): below ~320,000 samples the share would give a
preference too few to train on (0.25 at 800)."""


def default_k(n_samples: int, fraction: float = K_FRACTION, minimum: int = K_MIN) -> int:
    """docs/concepts/selection.md: ``k`` at any data size: ``fraction`` of the ``n_samples`` (the paper's 100 of
    ~320,000), at least ``minimum``. At the paper's size both give 100; on larger data k grows with it, so that
    each preference's share of the data stays the paper's."""
    return int(max(minimum, math.ceil(fraction * n_samples)))


def default_min_pool(n_samples: int, k: int = 0, fraction: float = POOL_FRACTION, per_k: float = POOL_PER_K) -> int:
    """docs/concepts/selection.md: ``P_min``, kept thin at any data size: the larger of ``fraction`` of the
    ``n_samples`` (the paper's 2,000 of ~320,000) and ``per_k`` times ``k``, at least 1 and at most ``n_samples``."""
    return int(min(n_samples, max(1, math.ceil(fraction * n_samples), math.ceil(per_k * k))))


@dataclass(frozen=True)
class SelectionResult:
    """The samples chosen for one preference.

    Attributes:
        weights: the preference, normalised to sum 1, ``(M,)``.
        direction: its unit ray direction in normalised space, ``(M,)``.
        indices: indices into the scored points, ``(k,)``, nearest first (ties by index).
        distances: distance of each chosen sample to the ray (the selection's metric), ``(k,)``.
        layers: Pareto layer (0 = non-dominated) of each chosen sample, ``(k,)``.
    """

    weights: np.ndarray
    direction: np.ndarray
    indices: np.ndarray
    distances: np.ndarray
    layers: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe record (plain lists) for the run directory."""
        return {
            "weights": [float(v) for v in self.weights],
            "direction": [float(v) for v in self.direction],
            "indices": [int(v) for v in self.indices],
            "distances": [float(v) for v in self.distances],
            "layers": [int(v) for v in self.layers],
        }


@dataclass(frozen=True)
class Selection:
    """Everything one selection produced: the per-preference results and the pool they were drawn from.

    Iterating (or indexing) gives the ``SelectionResult`` of each preference, in the order the preferences were
    given.

    Attributes:
        results: one ``SelectionResult`` per preference.
        pool_indices: indices of the pool (union of the first ``num_layers`` layers), ascending.
        pool_layers: layer of each pool sample.
        num_layers: L, the number of layers in the pool.
        stats: the normalisation used (save it with the run).
        k, min_pool, metric, maximise: the settings used.
    """

    results: tuple[SelectionResult, ...]
    pool_indices: np.ndarray
    pool_layers: np.ndarray
    num_layers: int
    stats: NormalisationStats
    k: int
    min_pool: int
    metric: str
    maximise: bool = True

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[SelectionResult]:
        return iter(self.results)

    def __getitem__(self, i: int) -> SelectionResult:
        return self.results[i]

    def summary(self) -> dict[str, Any]:
        """JSON-safe summary of the pool and settings (without the per-preference sample lists)."""
        return {
            "pool_size": int(self.pool_indices.size),
            "num_layers": int(self.num_layers),
            "layer_sizes": [int(c) for c in np.bincount(self.pool_layers, minlength=self.num_layers)],
            "k": self.k,
            "min_pool": self.min_pool,
            "metric": self.metric,
            "maximise": self.maximise,
            "normalisation": self.stats.to_dict(),
            "num_preferences": len(self.results),
        }


def select_for_preferences(
    points: object,
    weights: object,
    k: int = 100,
    min_pool: int | None = None,
    normalisation: str = "minmax",
    quantiles: tuple[float, float] | Sequence[float] = (0.001, 0.999),
    metric: str = "perpendicular",
    stats: NormalisationStats | Mapping[str, Any] | None = None,
    maximise: bool = True,
    names: Sequence[str] | None = None,
) -> Selection:
    """Select the ``k`` pool samples nearest each preference's ray.

    Args:
        points: ``(n, M)`` raw reward vectors of all candidate samples; finite. Rewards are maximised
            (``maximise=True``); with ``maximise=False`` smaller is better in every objective.
        weights: preferences, one vector or a list (``(P, M)``), each normalised to sum 1.
        k: samples per preference (paper: 100).
        min_pool: ``P_min``: the pool is the union of the first ``L`` Pareto layers, ``L`` the smallest holding at
            least this many samples. Default ``default_min_pool(n, k)`` (0.625% of n, at least 5k), capped at n.
        normalisation: ``'minmax'`` or ``'robust'`` (``quantiles``); ignored when ``stats`` is given.
        quantiles: lower/upper quantiles for ``'robust'``.
        metric: ``'perpendicular'`` distance to the ray (default), ``'angle'``, or ``'weighted_sum'`` (the ablation).
        stats: normalisation statistics to use (a ``NormalisationStats`` or its ``to_dict()``). By default they
            are fitted over ALL ``points`` (the candidate pool of docs/concepts/selection.md), not just the first
            layers, so that the ideal point and the scale reflect the whole scored dataset.
        maximise: whether larger rewards are better (the default, and what ParetoHqD assumes).
        names: optional objective names, used only in error messages.

    Returns:
        A ``Selection``: per-preference results plus the pool, its layer count and the statistics used.

    Raises:
        ValueError: non-finite scores, malformed preferences, ``k < 1``, ``k`` larger than the pool, or an unknown
        method/metric; the message names the offending value.
    """
    pool = candidate_pool(points, min_pool=min_pool, normalisation=normalisation, quantiles=quantiles,
                          stats=stats, maximise=maximise, names=names, k=k)
    return select_from_pool(points, pool, weights, k=k, metric=metric, names=names)


@dataclass(frozen=True)
class CandidatePool:
    """The high-quality pool (union of the first Pareto layers) and the normalisation its distances use.

    Attributes:
        indices: pool members, indices into the scored points, ascending.
        layers: Pareto layer of each member (0 = non-dominated).
        num_layers: L, the number of layers in the pool.
        stats: the normalisation (fitted over all scored points unless given).
        min_pool: the ``P_min`` that decided L.
        maximise: whether larger rewards are better.
    """

    indices: np.ndarray
    layers: np.ndarray
    num_layers: int
    stats: NormalisationStats
    min_pool: int
    maximise: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe record for the run directory; ``from_dict`` reads it back exactly."""
        return {"pool_size": int(self.indices.size), "num_layers": int(self.num_layers),
                "layer_sizes": [int(c) for c in np.bincount(self.layers, minlength=self.num_layers)],
                "min_pool": int(self.min_pool), "maximise": bool(self.maximise),
                "normalisation": self.stats.to_dict(), "indices": [int(i) for i in self.indices],
                "layers": [int(layer) for layer in self.layers]}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> CandidatePool:
        return cls(np.asarray(record["indices"], dtype=np.int64), np.asarray(record["layers"], dtype=np.int64),
                   int(record["num_layers"]), NormalisationStats.from_dict(record["normalisation"]),
                   int(record["min_pool"]), bool(record.get("maximise", True)))


def candidate_pool(
    points: object,
    min_pool: int | None = None,
    normalisation: str = "minmax",
    quantiles: tuple[float, float] | Sequence[float] = (0.001, 0.999),
    stats: NormalisationStats | Mapping[str, Any] | None = None,
    maximise: bool = True,
    names: Sequence[str] | None = None,
    k: int = 0,
) -> CandidatePool:
    """The first Pareto layers holding at least ``min_pool`` samples (capped at n), and the normalisation fitted
    over every point (docs/concepts/selection.md); arguments as in :func:`select_for_preferences` (``k``: only for the
    default ``min_pool``)."""
    X = as_points(points, "scores", names, allow_empty=False)
    n, m = X.shape
    pool_min = default_min_pool(n, k) if min_pool is None else as_count(min_pool, "min_pool")
    if stats is None and normalisation not in METHODS:
        raise ValueError(f"normalisation must be one of {', '.join(METHODS)}, got {normalisation!r}")
    stats = _resolve_stats(stats, X, normalisation, quantiles, m)
    layers = layers_validated(X, None, min(pool_min, n), maximise)
    indices = np.flatnonzero(layers >= 0)
    pool_layers = layers[indices]
    return CandidatePool(indices, pool_layers, int(pool_layers.max()) + 1, stats, pool_min, bool(maximise))


def select_from_pool(
    points: object,
    pool: CandidatePool,
    weights: object,
    k: int = 100,
    metric: str = "perpendicular",
    names: Sequence[str] | None = None,
) -> Selection:
    """For each preference, the ``k`` members of ``pool`` nearest its ray (distance ascending, ties by index).

    Each preference is chosen independently of the others: selecting one preference alone gives the same samples
    as selecting it among many."""
    X = as_points(points, "scores", names, allow_empty=False)
    n, m = X.shape
    W = validate_preferences(weights, m)
    k = as_count(k, "k")
    if metric not in SELECTION_METRICS:
        raise ValueError(f"metric must be one of {', '.join(SELECTION_METRICS)}, got {metric!r}")
    if k > n:
        raise ValueError(f"k={k} is larger than the candidate pool of {n} samples")
    if pool.indices.size < k:
        raise ValueError(
            f"k={k} is larger than the candidate pool of {pool.indices.size} samples (the first {pool.num_layers} "
            f"Pareto layers, min_pool={pool.min_pool}); raise min_pool or lower k"
        )
    z = pool.stats.apply(X[pool.indices], maximise=pool.maximise)
    directions = preference_direction(W)
    distances = -(z @ W.T) if metric == "weighted_sum" else ray_distance(z, directions, metric=metric)
    results = []
    for p in range(W.shape[0]):  # loop over preferences; each step is vectorised over the pool
        chosen = _k_nearest(distances[:, p], k)
        results.append(
            SelectionResult(
                weights=W[p],
                direction=directions[p],
                indices=pool.indices[chosen],
                distances=distances[chosen, p],
                layers=pool.layers[chosen],
            )
        )
    return Selection(
        results=tuple(results),
        pool_indices=pool.indices,
        pool_layers=pool.layers,
        num_layers=pool.num_layers,
        stats=pool.stats,
        k=k,
        min_pool=pool.min_pool,
        metric=metric,
        maximise=pool.maximise,
    )


def _resolve_stats(
    stats: NormalisationStats | Mapping[str, Any] | None,
    X: np.ndarray,
    method: str,
    quantiles: tuple[float, float] | Sequence[float],
    m: int,
) -> NormalisationStats:
    if stats is None:
        return fit_validated(X, method, None if method == "minmax" else check_quantiles(quantiles))
    if not isinstance(stats, NormalisationStats):
        stats = NormalisationStats.from_dict(stats)
    if stats.n_objectives != m:
        raise ValueError(f"normalisation stats have {stats.n_objectives} objectives but the scores have {m}")
    return stats


def _k_nearest(dist: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` smallest distances, ascending, ties broken by position (= index: the pool is sorted).

    ``argpartition`` alone would pick an arbitrary subset of the values tied at the k-th distance; taking every
    candidate up to that distance and sorting by (distance, position) makes the choice reproducible.
    """
    if k < dist.size:
        kth = np.partition(dist, k - 1)[k - 1]
        candidates = np.flatnonzero(dist <= kth)
    else:
        candidates = np.arange(dist.size)
    order = np.lexsort((candidates, dist[candidates]))
    return candidates[order[:k]]
