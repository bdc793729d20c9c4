"""Per-objective normalisation of reward vectors to [0, 1], with the ideal point at (1, ..., 1)
(docs/concepts/preferences.md).

The statistics are a small JSON-safe record (``NormalisationStats.to_dict``) so that a run can save them next to
the scores and apply exactly the same map later (stage 2, evaluation, a user's own analysis).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._validate import as_points

__all__ = ["METHODS", "NormalisationStats", "check_finite_scores", "fit_normalisation"]

METHODS = ("minmax", "robust")


def check_finite_scores(points: object, names: Sequence[str] | None = None) -> np.ndarray:
    """Return ``points`` as a float64 ``(n, M)`` array; raise ValueError naming the objective and first bad row.

    ``names`` (one per objective column) makes the message say ``objective 'helpful'`` instead of ``objective 1``.
    Example message: ``scores contain NaN in objective 1 (row 17)``.
    """
    return as_points(points, "scores", names)


@dataclass(frozen=True, eq=False)
class NormalisationStats:
    """Per-objective affine map ``z = (r - low) / (high - low)`` (maximising), fitted on a candidate pool.

    Attributes:
        method: ``'minmax'`` (low/high are the min and max) or ``'robust'`` (low/high are the ``quantiles``).
        low, high: float arrays of length M, in raw reward units.
        quantiles: the ``(lower, upper)`` quantiles used by ``'robust'``; ``None`` for ``'minmax'``.

    A constant objective (``high == low``) maps to 1.0: every sample is at its ideal, so it neither helps nor hurts
    any sample's distance to a preference ray. ``'robust'`` clips to [0, 1]; ``'minmax'`` does not clip, so points
    outside the fitted range (other data than the stats were fitted on) map outside [0, 1] rather than being
    silently merged with the extremes.
    """

    method: str
    low: np.ndarray
    high: np.ndarray
    quantiles: tuple[float, float] | None = None
    _span: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"normalisation method must be one of {', '.join(METHODS)}, got {self.method!r}")
        low = np.asarray(self.low, dtype=np.float64).reshape(-1)
        high = np.asarray(self.high, dtype=np.float64).reshape(-1)
        if low.shape != high.shape or low.size == 0:
            raise ValueError(
                f"normalisation low and high must be non-empty and of equal length, got {low.size} and {high.size}"
            )
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise ValueError("normalisation low and high must be finite numbers")
        bad = np.flatnonzero(high < low)
        if bad.size:
            j = int(bad[0])
            raise ValueError(f"normalisation high ({high[j]}) is below low ({low[j]}) for objective {j}")
        quantiles = None if self.quantiles is None else check_quantiles(self.quantiles)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "quantiles", quantiles)
        object.__setattr__(self, "_span", high - low)

    @property
    def n_objectives(self) -> int:
        return int(self.low.size)

    def __eq__(self, other: object) -> bool:
        # The generated __eq__ would compare arrays with ==, whose truth value is ambiguous.
        if not isinstance(other, NormalisationStats):
            return NotImplemented
        return (
            self.method == other.method
            and self.quantiles == other.quantiles
            and np.array_equal(self.low, other.low)
            and np.array_equal(self.high, other.high)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside

    def apply(self, points: object, maximise: bool = True) -> np.ndarray:
        """Map raw ``(n, M)`` points to normalised space, where the ideal point is ``(1, ..., 1)``.

        ``maximise=True`` (rewards): ``z = (r - low) / (high - low)``. ``maximise=False``: ``z = (high - r) /
        (high - low)``, so the smallest raw value is the ideal and everything downstream still maximises.
        """
        r = as_points(points, "points")
        if r.shape[1] != self.n_objectives:
            raise ValueError(
                f"points have {r.shape[1]} objectives but the normalisation was fitted on {self.n_objectives}"
            )
        constant = self._span == 0
        span = np.where(constant, 1.0, self._span)
        z = (r - self.low) / span if maximise else (self.high - r) / span
        if constant.any():
            z[:, constant] = 1.0
        if self.method == "robust":
            np.clip(z, 0.0, 1.0, out=z)
        return z

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe record: ``{"method", "low", "high", "quantiles"}`` with plain lists and floats."""
        return {
            "method": self.method,
            "low": [float(v) for v in self.low],
            "high": [float(v) for v in self.high],
            "quantiles": None if self.quantiles is None else [float(q) for q in self.quantiles],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NormalisationStats:
        """Inverse of :meth:`to_dict`; raises ValueError on a missing or malformed field."""
        if not isinstance(data, Mapping):
            raise ValueError(f"normalisation stats must be a mapping, got {type(data).__name__}")
        missing = [key for key in ("method", "low", "high") if key not in data]
        if missing:
            raise ValueError(f"normalisation stats are missing {', '.join(missing)}")
        quantiles = data.get("quantiles")
        try:
            low = np.asarray(data["low"], dtype=np.float64)
            high = np.asarray(data["high"], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("normalisation low and high must be lists of numbers") from None
        return cls(
            method=str(data["method"]),
            low=low,
            high=high,
            quantiles=quantiles,  # validated (and made a tuple) in __post_init__
        )


def fit_normalisation(
    points: object,
    method: str = "minmax",
    quantiles: tuple[float, float] | Sequence[float] = (0.001, 0.999),
    names: Sequence[str] | None = None,
) -> NormalisationStats:
    """Fit per-objective statistics on ``points`` (the candidate pool; min-max by default:
    docs/concepts/preferences.md).

    Args:
        points: ``(n, M)`` raw rewards, finite.
        method: ``'minmax'`` or ``'robust'`` (``quantiles`` instead of min/max, then clipping to [0, 1]).
        quantiles: lower and upper quantile for ``'robust'`` (default 0.1% / 99.9%); ignored for ``'minmax'``.
        names: optional objective names, only used in error messages.

    For ``'robust'``, an objective whose two quantiles coincide but which is not constant (e.g. a reward that is 0
    for 99.95% of samples) falls back to its min and max, so it is not flattened to the ideal for every sample.
    """
    if method not in METHODS:
        raise ValueError(f"normalisation method must be one of {', '.join(METHODS)}, got {method!r}")
    q = None if method == "minmax" else check_quantiles(quantiles)
    return fit_validated(as_points(points, "scores", names, allow_empty=False), method, q)


def fit_validated(r: np.ndarray, method: str, quantiles: tuple[float, float] | None) -> NormalisationStats:
    """``fit_normalisation`` for an array already checked by ``as_points`` (skips a second pass over it)."""
    # Column by column: numpy's axis-0 reductions of a tall (n, 2) array are ~20x slower than strided 1-D ones.
    cols = [r[:, j] for j in range(r.shape[1])]
    lo_all = np.array([c.min() for c in cols])
    hi_all = np.array([c.max() for c in cols])
    if method == "minmax":
        return NormalisationStats("minmax", lo_all, hi_all, None)
    assert quantiles is not None
    low, high = np.array([np.quantile(c, quantiles) for c in cols]).T
    degenerate = high <= low
    low = np.where(degenerate, lo_all, low)
    high = np.where(degenerate, hi_all, high)
    return NormalisationStats("robust", low, high, quantiles)


def check_quantiles(quantiles: object) -> tuple[float, float]:
    """``(lower, upper)`` as floats with ``0 <= lower < upper <= 1``, or ValueError."""
    try:
        q = tuple(float(v) for v in quantiles)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"quantiles must be two numbers (lower, upper), got {quantiles!r}") from None
    if len(q) != 2 or not (0.0 <= q[0] < q[1] <= 1.0):
        raise ValueError(f"quantiles must be two numbers with 0 <= lower < upper <= 1, got {quantiles!r}")
    return q  # type: ignore[return-value]
