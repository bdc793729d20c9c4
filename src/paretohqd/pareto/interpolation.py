"""Preferences between trained ones: which trained preferences enclose a new one, with what mix.

Trained preferences lie on the simplex (rows summing to 1). A new preference ``w`` inside their hull is the convex
combination ``w = sum_i c_i t_i`` of the vertices of the cell that holds it: with M = 2 its two neighbours on the
segment, with M >= 3 the M vertices of the Delaunay simplex that contains it, triangulated in an orthonormal basis
of the simplex's plane (in the first M - 1 coordinates a simplex-lattice grid has co-circular squares whose
arbitrary diagonal would join preferences two grid steps apart). Those coefficients are the mix a served model is
made with. Numpy only (scipy's Delaunay, imported when M >= 3).
"""

from __future__ import annotations

import numpy as np

from .directions import validate_preferences

EXACT = 1e-9
"""Coordinates within this of a trained preference are that preference; smaller mix coefficients are dropped."""


def enclosing_mix(trained: object, preference: object) -> tuple[list[int], list[float]]:
    """(indices into ``trained``, convex coefficients summing to 1) of the trained preferences whose cell holds
    ``preference``: one index when it is a trained preference, two on a segment (M = 2, or an edge), up to M.

    Args:
        trained: ``(n_preferences, n_objectives)`` trained preference weights (any positive scale per row).
        preference: ``(n_objectives,)`` the preference to serve.

    Raises:
        ValueError: the preference lies outside the hull of the trained preferences (serve the nearest instead),
        or the trained preferences span no cell (fewer than M distinct ones in general position).
    """
    t = validate_preferences(trained, np.asarray(trained).shape[-1])
    w = validate_preferences(preference, t.shape[1])[0]
    same = np.flatnonzero(np.abs(t - w).max(axis=1) <= EXACT)
    if same.size:
        return [int(same[0])], [1.0]
    if t.shape[1] == 2:
        indices, coefficients = _on_segment(t[:, 0], w[0])
    else:
        indices, coefficients = _in_simplex(t, w)
    keep = [(i, c) for i, c in zip(indices, coefficients) if c > EXACT]
    total = sum(c for _, c in keep)
    return [i for i, _ in keep], [float(c / total) for _, c in keep]


def _on_segment(first: np.ndarray, value: float) -> tuple[list[int], list[float]]:
    order = np.argsort(first, kind="stable")
    ordered = first[order]
    if value < ordered[0] - EXACT or value > ordered[-1] + EXACT or len(ordered) < 2:
        raise ValueError(f"the preference lies outside the trained preferences (first weight from {ordered[0]:.4g} "
                         f"to {ordered[-1]:.4g})")
    upper = int(np.clip(np.searchsorted(ordered, value, side="right"), 1, len(ordered) - 1))
    low, high = ordered[upper - 1], ordered[upper]
    share = (value - low) / (high - low)
    return [int(order[upper - 1]), int(order[upper])], [1.0 - share, share]


def _in_simplex(trained: np.ndarray, preference: np.ndarray) -> tuple[list[int], list[float]]:
    from scipy.spatial import Delaunay, QhullError

    try:
        cells = Delaunay(_in_plane(trained))
    except (QhullError, ValueError):
        raise ValueError(f"the {len(trained)} trained preferences span no cell of the simplex (they lie on a lower-"
                         "dimensional set): serve the nearest instead") from None
    point = _in_plane(preference[None, :])[0]
    cell = int(cells.find_simplex(point[None, :], tol=EXACT)[0])
    if cell < 0:
        raise ValueError("the preference lies outside the hull of the trained preferences")
    transform = cells.transform[cell]
    partial = transform[:-1] @ (point - transform[-1])
    coefficients = np.clip(np.r_[partial, 1.0 - partial.sum()], 0.0, None)
    return [int(i) for i in cells.simplices[cell]], coefficients.tolist()


def cell_midpoints(trained: object) -> np.ndarray:
    """``(n_cells, n_objectives)`` the centre of each cell of the trained preferences: with M = 2 the midpoint of
    each pair of neighbours, with M >= 3 the centroid of each Delaunay simplex (sorted, so the order is stable)."""
    t = validate_preferences(trained, np.asarray(trained).shape[-1])
    if t.shape[1] == 1 or len(t) < 2:
        return np.empty((0, t.shape[1]))
    if t.shape[1] == 2:
        ordered = t[np.argsort(t[:, 0], kind="stable")]
        return (ordered[:-1] + ordered[1:]) / 2.0
    from scipy.spatial import Delaunay

    centres = t[Delaunay(_in_plane(t)).simplices].mean(axis=1)
    return centres[np.lexsort(centres.T[::-1])]


def _in_plane(weights: np.ndarray) -> np.ndarray:
    """Coordinates of rows summing to 1 in an orthonormal basis of that plane (distances and angles kept)."""
    m = weights.shape[1]
    basis = np.linalg.qr(np.eye(m) - 1.0 / m)[0][:, : m - 1]
    return (weights - 1.0 / m) @ basis
