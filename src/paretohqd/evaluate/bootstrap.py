"""Bootstrap over test prompts, vectorised: every replicate's draw as one row of counts, every replicate's mean
with one matrix product. One definition for a run's own intervals (``metrics``) and for comparisons
(``compare``)."""

from __future__ import annotations

import numpy as np

INTERVAL = (2.5, 97.5)


def bootstrap_indices(n: int, replicates: int, seed: int, stream: int = 0) -> np.ndarray:
    """``(replicates, n)`` prompt positions drawn with replacement; ``stream`` tells apart the draws of runs on
    other prompt sets (the same ``seed`` and ``stream`` give the same draws)."""
    return np.random.default_rng([seed, stream]).integers(0, n, size=(replicates, n))


def bootstrap_counts(indices: np.ndarray, n: int) -> np.ndarray:
    """How often each of ``n`` prompts was drawn in each replicate: ``(B, n)``, each row summing to ``n``."""
    B = indices.shape[0]
    flat = (indices + n * np.arange(B)[:, None]).ravel()
    return np.bincount(flat, minlength=B * n).reshape(B, n).astype(np.float64)


def replicate_means(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Means over resampled prompts of ``values`` ``(n, ...)`` for every replicate at once: ``(B, ...)``."""
    n = values.shape[0]
    return (counts @ values.reshape(n, -1) / counts.sum(axis=1, keepdims=True)).reshape((-1, *values.shape[1:]))


def probability_higher(ours: np.ndarray, theirs: np.ndarray | float) -> float:
    """Paired bootstrap probability that ``ours`` is higher (than ``theirs``, or than 0 for replicates of a
    difference): the share of replicates where it is, ties counting one half."""
    return float(np.mean(ours > theirs) + 0.5 * np.mean(ours == theirs))


def interval(replicates: np.ndarray) -> list[float]:
    """The 95% percentile interval of bootstrap ``replicates`` (numpy's linear interpolation)."""
    return [float(v) for v in np.percentile(replicates, INTERVAL)]
