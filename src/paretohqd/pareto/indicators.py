"""Quality indicators of a measured front: hypervolume (raw and with the METHOD.md 3 normalisation) and
non-dominance, through moocore. Rewards are maximised: every call passes ``maximise`` to moocore explicitly,
because moocore minimises by default.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ._validate import as_points
from .normalise import fit_normalisation

__all__ = ["hypervolume", "normalised_hypervolume", "is_nondominated"]


def hypervolume(points: object, reference_point: object, maximise: bool = True) -> float:
    """Hypervolume of ``points`` ``(n, M)`` with respect to ``reference_point`` ``(M,)`` (or one number for all).

    With ``maximise=True`` (rewards) the volume is that of the region dominated by the points and above the
    reference point. Points that are not strictly better than the reference in every objective contribute nothing.
    An empty set has hypervolume 0.
    """
    import moocore

    P = as_points(points, "points")
    ref = _as_reference(reference_point, P.shape[1])
    better = np.all(P > ref, axis=1) if maximise else np.all(P < ref, axis=1)
    if not better.any():
        return 0.0
    return float(moocore.hypervolume(P[better], ref=ref, maximise=maximise))


def normalised_hypervolume(
    point_sets: Mapping[str, object],
    reference: object | None = None,
    maximise: bool = True,
) -> dict[str, Any]:
    """Hypervolume of several fronts on one shared scale (METHOD.md 3 DEFAULT).

    Each objective is min-max normalised over the union of all sets, and the reference point is the worst corner,
    ``(0, ..., 0)`` in normalised space (the per-objective minimum when maximising), unless ``reference`` (raw
    units) is given. Note that with the default reference a point holding the worst value of any objective adds
    no volume. An objective on which every point is equal maps to 1.0 and so multiplies every volume by 1 (by 0 if
    the given reference is not strictly worse than that value).

    Returns:
        ``{"hypervolume": {name: float}, "reference_point": {"raw": [...], "normalised": [...]},
        "normalisation": {"method": "minmax", "low": [...], "high": [...], "quantiles": None},
        "maximise": bool}`` -- everything needed to report (and reproduce) the numbers.
    """
    if not isinstance(point_sets, Mapping) or not point_sets:
        raise ValueError("point_sets must be a non-empty mapping of name -> (n_points, n_objectives) array")
    arrays = {str(name): as_points(pts, f"point set {name!r}") for name, pts in point_sets.items()}
    m_by_set = {name: a.shape[1] for name, a in arrays.items()}
    first_name, m = next(iter(m_by_set.items()))
    for name, mm in m_by_set.items():
        if mm != m:
            raise ValueError(f"point set {name!r} has {mm} objectives but {first_name!r} has {m}")
    union = np.concatenate(list(arrays.values()), axis=0)
    if union.shape[0] == 0:
        raise ValueError("every point set is empty; there is nothing to normalise over")
    stats = fit_normalisation(union, method="minmax")
    constant = stats.high == stats.low

    if reference is None:
        ref_norm = np.zeros(m)
        ref_raw = stats.low.copy() if maximise else stats.high.copy()
    else:
        ref_raw = _as_reference(reference, m)
        span = np.where(constant, 1.0, stats.high - stats.low)
        ref_norm = (ref_raw - stats.low) / span if maximise else (stats.high - ref_raw) / span
        # A constant objective sits at 1.0; the reference either leaves room below it (0) or none (1).
        worse = ref_raw < stats.low if maximise else ref_raw > stats.high
        ref_norm = np.where(constant, np.where(worse, 0.0, 1.0), ref_norm)

    volumes = {
        name: hypervolume(stats.apply(a, maximise=maximise), ref_norm, maximise=True) if a.shape[0] else 0.0
        for name, a in arrays.items()
    }
    return {
        "hypervolume": volumes,
        "reference_point": {"raw": [float(v) for v in ref_raw], "normalised": [float(v) for v in ref_norm]},
        "normalisation": stats.to_dict(),
        "maximise": bool(maximise),
    }


def is_nondominated(points: object, maximise: bool = True, keep_weakly: bool = True) -> np.ndarray:
    """Boolean mask of the points not dominated by any other point (``maximise=True``: larger is better).

    ``keep_weakly=True`` (our default, unlike moocore's) keeps every copy of a duplicated non-dominated point, which
    matches the layer convention that duplicates share a layer; ``False`` keeps only the first copy.
    """
    import moocore

    P = as_points(points, "points")
    if P.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(moocore.is_nondominated(P, maximise=maximise, keep_weakly=keep_weakly), dtype=bool)


def _as_reference(reference: object, m: int) -> np.ndarray:
    try:
        ref = np.asarray(reference, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"reference point must be a list of {m} numbers, got {reference!r}") from None
    ref = np.full(m, float(ref)) if ref.ndim == 0 else ref.reshape(-1)  # a scalar applies to every objective
    if ref.size != m:
        raise ValueError(f"reference point has {ref.size} values but the points have {m} objectives")
    if not np.isfinite(ref).all():
        raise ValueError(f"reference point must be finite, got {ref.tolist()}")
    return ref
