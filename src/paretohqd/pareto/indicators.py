"""Quality indicators of a measured front: hypervolume (raw and with the union normalisation of
docs/concepts/hypervolume.md) and non-dominance, through moocore. Rewards are maximised: every call passes ``maximise``
to moocore explicitly, because moocore minimises by default.

One definition of a hypervolume number, :class:`HypervolumeFrame`: how points are mapped before measuring (min-max
bounds, or raw units) and where the reference point is. Fit it once (:func:`minmax_frame` over the union of the
points being compared, or :func:`raw_frame` for a reference in raw units) and measure every front, and every
bootstrap replicate of a front (:meth:`HypervolumeFrame.hypervolumes`), on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validate import as_points
from .normalise import NormalisationStats, fit_normalisation

__all__ = [
    "HypervolumeFrame",
    "hypervolume",
    "hypervolume_batch",
    "is_nondominated",
    "minmax_frame",
    "normalised_hypervolume",
    "raw_frame",
]


def hypervolume(points: object, reference_point: object, maximise: bool = True) -> float:
    """Hypervolume of ``points`` ``(n, M)`` with respect to ``reference_point`` ``(M,)`` (or one number for all).

    With ``maximise=True`` (rewards) the volume is that of the region dominated by the points and above the
    reference point. Points that are not strictly better than the reference in every objective contribute nothing.
    An empty set has hypervolume 0.
    """
    import moocore

    P = as_points(points, "points")
    ref = _as_reference(reference_point, P.shape[1])
    better = np.all(ref < P, axis=1) if maximise else np.all(ref > P, axis=1)
    if not better.any():
        return 0.0
    return float(moocore.hypervolume(P[better], ref=ref, maximise=maximise))


def hypervolume_batch(points: object, reference_point: object, maximise: bool = True) -> np.ndarray:
    """Hypervolume of each of ``B`` fronts given as one ``(B, K, M)`` array (``K`` points each) -> ``(B,)``.

    Two objectives: one vectorised sweep over all fronts (sort by the first objective, running maximum of the
    second); more: :func:`hypervolume` (moocore) front by front. Same conventions as :func:`hypervolume`.
    """
    P = np.asarray(points, dtype=np.float64)
    if P.ndim != 3:
        raise ValueError(f"fronts must be a (B, K, M) array, got shape {P.shape}")
    if not np.isfinite(P).all():
        raise ValueError("fronts contain NaN or inf")
    B, K, m = P.shape
    ref = _as_reference(reference_point, m)
    if B == 0:
        return np.zeros(0)
    if K == 0:
        return np.zeros(B)
    if m != 2:
        return np.array([hypervolume(front, ref, maximise=maximise) for front in P])
    if not maximise:
        P, ref = -P, -ref
    better = np.all(ref < P, axis=2)
    x = np.where(better, P[:, :, 0], ref[0])  # a point not above the reference adds nothing: move it onto it
    y = np.where(better, P[:, :, 1], ref[1])
    order = np.argsort(-x, axis=1, kind="stable")
    x = np.take_along_axis(x, order, axis=1)
    top = np.maximum.accumulate(np.take_along_axis(y, order, axis=1), axis=1)
    below = np.concatenate([np.full((B, 1), ref[1]), top[:, :-1]], axis=1)
    return np.sum((x - ref[0]) * (top - below), axis=1)


@dataclass(frozen=True, eq=False)
class HypervolumeFrame:
    """Everything that defines a hypervolume number besides the points: the normalisation (``stats``: min-max
    bounds; None: raw reward units) and the reference point, raw and in the measured space.

    Numbers measured on one frame are comparable; numbers on two frames are not, unless both are raw frames with
    the same reference point.
    """

    stats: NormalisationStats | None
    reference_raw: np.ndarray
    reference: np.ndarray
    """The reference point in the space the volume is measured in (normalised, or raw for a raw frame)."""
    reference_rule: str
    """``worst corner`` (of the points the bounds were fitted on) or ``given`` (a raw reference point)."""
    maximise: bool = True

    def transform(self, points: object) -> np.ndarray:
        """``(..., M)`` raw points into the measured space (the ideal direction is up in every objective)."""
        P = np.asarray(points, dtype=np.float64)
        if self.stats is None:
            return P if self.maximise else -P
        flat = P.reshape(-1, P.shape[-1])
        return self.stats.apply(flat, maximise=self.maximise).reshape(P.shape)

    def hypervolume(self, points: object) -> float:
        """Hypervolume of one front of raw points ``(K, M)``."""
        P = as_points(points, "points")
        return hypervolume(self.transform(P), self.reference, maximise=True) if P.shape[0] else 0.0

    def hypervolumes(self, fronts: object) -> np.ndarray:
        """Hypervolume of each front of a ``(B, K, M)`` array of raw points (bootstrap replicates) -> ``(B,)``."""
        return hypervolume_batch(self.transform(fronts), self.reference, maximise=True)

    def to_dict(self) -> dict[str, Any]:
        """``{"normalisation": {"method": "minmax", "low", "high", ...} or {"method": "none"}, "reference_point":
        {"raw", "normalised" (None in raw units), "rule"}, "maximise"}``: what to report with the number."""
        return {
            "normalisation": {"method": "none"} if self.stats is None else self.stats.to_dict(),
            "reference_point": {
                "raw": [float(v) for v in self.reference_raw],
                "normalised": None if self.stats is None else [float(v) for v in self.reference],
                "rule": self.reference_rule,
            },
            "maximise": bool(self.maximise),
        }


def minmax_frame(union: object, reference: object | None = None, maximise: bool = True) -> HypervolumeFrame:
    """docs/concepts/hypervolume.md: each objective min-max normalised over ``union`` (the points of every front being
    compared), reference = the worst corner of that union, ``(0, ..., 0)`` normalised; or ``reference`` (raw
    units) mapped into the normalised space. An objective on which every point is equal maps to 1.0 and so
    multiplies every volume by 1 (by 0 if a given reference is not strictly worse than that value)."""
    U = as_points(union, "union of the points")
    if U.shape[0] == 0:
        raise ValueError("every point set is empty; there is nothing to normalise over")
    m = U.shape[1]
    stats = fit_normalisation(U, method="minmax")
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
    return HypervolumeFrame(stats, ref_raw, ref_norm, "worst corner" if reference is None else "given", maximise)


def raw_frame(reference: object, m: int, maximise: bool = True) -> HypervolumeFrame:
    """Hypervolume in raw reward units above a given raw reference point: comparable across runs that use the same
    reference point, whatever points each run has."""
    ref = _as_reference(reference, m)
    return HypervolumeFrame(None, ref, ref if maximise else -ref, "given", maximise)


def normalised_hypervolume(
    point_sets: Mapping[str, object],
    reference: object | None = None,
    maximise: bool = True,
) -> dict[str, Any]:
    """Hypervolume of several fronts on one shared scale (docs/concepts/hypervolume.md).

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
    frame = minmax_frame(union, reference, maximise)
    volumes = {name: frame.hypervolume(a) for name, a in arrays.items()}
    return {
        "hypervolume": volumes,
        "reference_point": {"raw": [float(v) for v in frame.reference_raw],
                            "normalised": [float(v) for v in frame.reference]},
        "normalisation": frame.stats.to_dict(),
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
