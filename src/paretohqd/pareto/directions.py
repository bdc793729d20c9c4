"""Preferences (weight vectors on the simplex), their rays in normalised reward space, and preference grids.

docs/concepts/preferences.md: in normalised space the ideal point is ``1 = (1, ..., 1)`` and a preference ``w``
(summing to 1) is the ray from the ideal towards the compromise point ``W = w``, with unit direction
``d(w) = (w - 1)/||w - 1||``. Along the ray the gaps to the ideal keep the ratio ``(1 - w_i) : (1 - w_j)``, so a
large ``w_i`` means a small gap in objective ``i``: the objective is preferred. A one-hot ``w = e_i`` keeps objective
``i`` at its ideal; the balanced ``w = 1/M`` is the diagonal. Unlike a weighted sum, the ray reaches concave parts
of a front.
"""

from __future__ import annotations

import numpy as np

from ._validate import as_count

__all__ = ["METRICS", "preference_direction", "ray_distance", "validate_preferences"]

METRICS = ("perpendicular", "angle")



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
        largest = w.max()
        if largest == 0:
            raise ValueError(f"preference {i} is all zeros")
        # Scaled by the largest weight first, so that the sum can neither overflow (1.7e308 + 1.7e307) nor lose
        # the smaller weights (1e-300 beside 3e-300): the result is within a few ulps of the exact fractions.
        w = w / largest
        out[i] = w / w.sum()
    return out


def preference_direction(weights: object, n_objectives: int | None = None) -> np.ndarray:
    """Unit ray directions ``d(w) = (w - 1)/||w - 1||`` in normalised space, one row per preference ``(P, M)``.

    ``weights`` are validated and normalised to sum 1 first (the direction depends on that scale). With one
    objective ``w - 1`` is zero; the direction is then defined as ``(-1,)``: the ray runs from the ideal straight
    down the only axis (every point lies on it, so :func:`ray_distance` ranks by the distance to the ideal).
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

    * ``'perpendicular'`` (the default; docs/concepts/selection.md): ``t = max(v . d, 0)`` and ``||v - t d||``. A point
      "behind" the ideal along the ray (``v . d < 0``) gets its distance to the ideal itself.
    * ``'angle'``: the angle between ``v`` and ``d`` in radians (0 on the ray, pi opposite); a point exactly at
      the ideal has angle 0.

    With one objective every point lies on the only ray, so both metrics would be 0 for all of them; the distance
    is then ``1 - z``, how far the point falls short of the best reward, and the nearest are the best.

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
    if zz.shape[1] == 1:
        return np.repeat(-v, d.shape[0], axis=1)  # a point beyond the fitted best is nearer still
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
