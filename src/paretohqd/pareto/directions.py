"""Preferences (weight vectors on the simplex), their rays in normalised reward space, and preference grids.

METHOD.md 1.3: in normalised space the ideal point is ``1 = (1, ..., 1)`` and a preference ``w`` (summing to 1)
is the ray from the ideal towards the compromise point ``W = w``, with unit direction ``d(w) = (w - 1)/||w - 1||``.
Along the ray the gaps to the ideal keep the ratio ``(1 - w_i) : (1 - w_j)``, so a large ``w_i`` means a small
gap in objective ``i``: the objective is preferred. A one-hot ``w = e_i`` keeps objective ``i`` at its ideal; the
balanced ``w = 1/M`` is the diagonal. Unlike a weighted sum, the ray reaches concave parts of a front.
"""

from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np

from ._validate import as_count

__all__ = [
    "validate_preferences",
    "preference_direction",
    "ray_distance",
    "das_dennis",
    "linear_grid",
    "ric_grid_3",
    "preference_grid",
    "representative_preferences",
    "DEFAULT_DAS_DENNIS_PARTITIONS",
    "METRICS",
]

METRICS = ("perpendicular", "angle")

# DEFAULT partitions for preference_grid('das-dennis') when none are given: 11 points for M=2 (the paper's grid),
# 15 for M=3 (close to RiC's 13), 20 for M=4, then 2 partitions (M(M+1)/2 points).
DEFAULT_DAS_DENNIS_PARTITIONS = {1: 1, 2: 10, 3: 4, 4: 3}


def validate_preferences(weights: object, n_objectives: int) -> np.ndarray:
    """Check preference weight vectors and normalise each to sum to 1.

    Args:
        weights: one vector ``[w_1, ..., w_M]`` or a list of them (``(P, M)``); any positive scale is accepted
            (``[2, 1]`` means ``[2/3, 1/3]``).
        n_objectives: M.

    Returns:
        float64 array ``(P, M)`` whose rows sum to 1.

    Raises:
        ValueError: wrong length, a negative or non-finite weight, an all-zero vector, or no preference at all,
        e.g. ``preference 3 has 2 weights but there are 3 objectives``.
    """
    m = as_count(n_objectives, "n_objectives")
    rows = _preference_rows(weights)
    out = np.empty((len(rows), m))
    for i, row in enumerate(rows):  # loop over preferences, each a handful of numbers
        try:
            w = np.asarray(row, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"preference {i} is not a list of numbers: {row!r}") from None
        if w.ndim != 1:
            raise ValueError(f"preference {i} is not a flat list of numbers: {row!r}")
        if w.size != m:
            raise ValueError(f"preference {i} has {w.size} weights but there are {m} objectives")
        bad = np.flatnonzero(~np.isfinite(w))
        if bad.size:
            raise ValueError(f"preference {i} has a non-finite weight {w[bad[0]]}")
        neg = np.flatnonzero(w < 0)
        if neg.size:
            raise ValueError(f"preference {i} has a negative weight {_fmt(w[neg[0]])}")
        total = w.sum()
        if total == 0:
            raise ValueError(f"preference {i} is all zeros")
        out[i] = w / total
    return out


def preference_direction(weights: object, n_objectives: int | None = None) -> np.ndarray:
    """Unit ray directions ``d(w) = (w - 1)/||w - 1||`` in normalised space, one row per preference ``(P, M)``.

    ``weights`` are validated and normalised to sum 1 first (the direction depends on that scale). With one
    objective ``w - 1`` is zero; the direction is then defined as ``(-1,)``: the ray runs from the ideal straight
    down the only axis, so the distance to it ranks samples by how far they fall short of the best reward.
    """
    if n_objectives is None:
        rows = _preference_rows(weights)
        n_objectives = int(np.size(rows[0]))
    w = validate_preferences(weights, n_objectives)
    if w.shape[1] == 1:
        return -np.ones_like(w)
    v = w - 1.0
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def ray_distance(z: object, directions: object, metric: str = "perpendicular") -> np.ndarray:
    """Distance of every normalised point to every preference ray, ``(n_points, n_preferences)``.

    With ``v = z - 1`` (the point seen from the ideal) and a unit direction ``d``:

    * ``'perpendicular'`` (METHOD.md 1.5 DEFAULT): ``t = max(v . d, 0)`` and ``||v - t d||``. A point "behind"
      the ideal along the ray (``v . d < 0``) gets its distance to the ideal itself.
    * ``'angle'``: the angle between ``v`` and ``d`` in radians (0 on the ray, pi opposite); a point exactly at
      the ideal has angle 0.

    ``directions`` are rescaled to unit length (rows must be non-zero). The loop runs over preferences; each step
    is one vectorised pass over the points.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    zz = np.asarray(z, dtype=np.float64)
    if zz.ndim != 2:
        raise ValueError(f"z must be a 2-D array of shape (n_points, n_objectives), got shape {zz.shape}")
    d = np.asarray(directions, dtype=np.float64)
    if d.ndim == 1:
        d = d[None, :]
    if d.ndim != 2 or d.shape[1] != zz.shape[1]:
        raise ValueError(f"directions have shape {d.shape} but the points have {zz.shape[1]} objectives")
    norms = np.linalg.norm(d, axis=1)
    zero = np.flatnonzero(~(norms > 0))
    if zero.size:
        raise ValueError(f"direction {int(zero[0])} has zero length (or is not finite)")
    d = d / norms[:, None]
    v = zz - 1.0
    proj = v @ d.T  # (n, P)
    out = np.empty_like(proj)
    for p in range(d.shape[0]):
        # Exact residual rather than sqrt(|v|^2 - t^2): the latter cancels badly for points near a long ray,
        # and the nearest-k selection compares exactly those small distances.
        if metric == "perpendicular":
            t = np.maximum(proj[:, p], 0.0)
            out[:, p] = np.linalg.norm(v - t[:, None] * d[p], axis=1)
        else:
            perp = np.linalg.norm(v - proj[:, p, None] * d[p], axis=1)
            out[:, p] = np.arctan2(perp, proj[:, p])  # accurate near 0, unlike arccos of a cosine
    return out


def das_dennis(n_partitions: int, n_objectives: int) -> np.ndarray:
    """Das-Dennis simplex-lattice grid (pymoo's ``das-dennis``): every ``w`` with ``w_i in {0, 1/p, ..., 1}``.

    Returns ``C(p + M - 1, M - 1)`` rows, each ``k / p`` for non-negative integers ``k`` summing to ``p`` (so the
    rows sum to 1 up to float rounding), in pymoo's order: first coordinate ascending, then the second, and so on.
    """
    p = as_count(n_partitions, "n_partitions")
    m = as_count(n_objectives, "n_objectives")
    if m == 1:
        return np.ones((1, 1))
    # Stars and bars: choosing the M-1 bar positions among p + M - 1 slots, in lexicographic order, lists the
    # compositions with the first part ascending, as pymoo's recursion does.
    bars = np.array(list(combinations(range(p + m - 1), m - 1)), dtype=np.int64)
    edges = np.concatenate(
        [np.full((bars.shape[0], 1), -1), bars, np.full((bars.shape[0], 1), p + m - 1)], axis=1
    )
    counts = np.diff(edges, axis=1) - 1
    return counts / p


def linear_grid(n_points: int = 11) -> np.ndarray:
    """Two-objective grid ``(w_1, 1 - w_1)`` with ``w_1 = 0, 1/(n-1), ..., 1`` ascending (the paper's 11 models)."""
    n = as_count(n_points, "n_points", minimum=2)
    i = np.arange(n)
    return np.stack([i / (n - 1), (n - 1 - i) / (n - 1)], axis=1)


def ric_grid_3() -> np.ndarray:
    """The 13 three-objective preference vectors of Rewards-in-Context, in RiC's order (METHOD.md 1.8)."""
    third = 1.0 / 3.0
    return np.array(
        [
            [0.0, 0.0, 1.0],
            [0.0, 1.0, 0.0],
            [0.1, 0.1, 0.8],
            [0.1, 0.8, 0.1],
            [0.2, 0.2, 0.6],
            [0.2, 0.4, 0.4],
            [0.2, 0.6, 0.2],
            [third, third, third],
            [0.4, 0.4, 0.2],
            [0.4, 0.2, 0.4],
            [0.6, 0.2, 0.2],
            [0.8, 0.1, 0.1],
            [1.0, 0.0, 0.0],
        ]
    )


def preference_grid(
    spec: str | Sequence[Sequence[float]] | np.ndarray,
    n_objectives: int,
    n_partitions: int | None = None,
) -> np.ndarray:
    """Preference weight vectors ``(P, M)`` from a named grid or an explicit list.

    Args:
        spec: ``'linear'`` (M=2: ``n_partitions + 1`` points, default 11), ``'ric'`` (M=3: RiC's 13),
            ``'das-dennis'`` (any M; ``n_partitions`` defaults to ``DEFAULT_DAS_DENNIS_PARTITIONS``), or an explicit
            list of weight vectors (validated and normalised to sum 1).
        n_objectives: M.
        n_partitions: grid resolution for ``'linear'`` and ``'das-dennis'``.
    """
    m = as_count(n_objectives, "n_objectives")
    if not isinstance(spec, str):
        return validate_preferences(spec, m)
    name = spec.strip().lower().replace("_", "-")
    if name == "linear":
        if m != 2:
            raise ValueError(f"the 'linear' preference grid is for 2 objectives, but there are {m}")
        parts = 10 if n_partitions is None else as_count(n_partitions, "n_partitions")
        return linear_grid(parts + 1)
    if name == "ric":
        if m != 3:
            raise ValueError(f"the 'ric' preference grid is for 3 objectives, but there are {m}")
        return ric_grid_3()
    if name in ("das-dennis", "dasdennis"):
        parts = DEFAULT_DAS_DENNIS_PARTITIONS.get(m, 2) if n_partitions is None else n_partitions
        return das_dennis(parts, m)
    raise ValueError(
        f"unknown preference grid {spec!r}; use 'linear', 'ric', 'das-dennis' or a list of weight vectors"
    )


def representative_preferences(n_objectives: int) -> np.ndarray:
    """The M one-hot preferences followed by the balanced one (the M+1 stage-2 generators, METHOD.md 1.7).

    With one objective both coincide and a single row ``[[1.0]]`` is returned.
    """
    m = as_count(n_objectives, "n_objectives")
    if m == 1:
        return np.ones((1, 1))
    return np.vstack([np.eye(m), np.full((1, m), 1.0 / m)])


def _preference_rows(weights: object) -> list:
    """Split ``weights`` into per-preference rows; a flat list of numbers is one preference."""
    if isinstance(weights, str):
        raise ValueError(f"preferences must be weight vectors, got the string {weights!r}")
    if isinstance(weights, np.ndarray):
        if weights.ndim == 1:
            rows = [weights]
        elif weights.ndim == 2:
            rows = list(weights)
        else:
            raise ValueError(f"preferences must be a (n_preferences, n_objectives) array, got shape {weights.shape}")
    else:
        try:
            rows = list(weights)  # type: ignore[call-overload]
        except TypeError:
            raise ValueError(f"preferences must be a list of weight vectors, got {weights!r}") from None
        if rows and all(np.isscalar(r) or (isinstance(r, np.ndarray) and r.ndim == 0) for r in rows):
            rows = [rows]
    if not rows:
        raise ValueError("no preferences given")
    return rows


def _fmt(value: float) -> str:
    return f"{value:g}"
