"""Preference grids (weight vectors on the simplex): the paper's linear grid, RiC's 13 vectors, Das-Dennis lattices,
explicit lists, and the representative preferences that generate ParetoHqD's stage-2 data.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

from ._validate import as_count
from .directions import validate_preferences

__all__ = [
    "DEFAULT_DAS_DENNIS_PARTITIONS",
    "GRIDS",
    "das_dennis",
    "linear_grid",
    "nearest_preferences",
    "preference_grid",
    "representative_preferences",
    "resolve_grid",
    "ric_grid_3",
]

GRIDS = ("auto", "linear", "ric", "das-dennis", "explicit")

# DEFAULT partitions of preference_grid('das-dennis') when none are given: 11 points for M=2 (the paper's grid),
# 15 for M=3 (close to RiC's 13), 20 for M=4, then 2 partitions (M(M+1)/2 points).
DEFAULT_DAS_DENNIS_PARTITIONS = {1: 1, 2: 10, 3: 4, 4: 3}


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
    """RiC's 13 three-objective preference vectors, in RiC's order (docs/concepts/preferences.md)."""
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
    """The M one-hot preferences followed by the balanced one (the M+1 stage-2 generators of
    docs/concepts/two-stages.md).

    With one objective both coincide and a single row ``[[1.0]]`` is returned.
    """
    m = as_count(n_objectives, "n_objectives")
    if m == 1:
        return np.ones((1, 1))
    return np.vstack([np.eye(m), np.full((1, m), 1.0 / m)])


def resolve_grid(
    grid: str = "auto",
    n_objectives: int = 2,
    n_points: int = 11,
    n_partitions: int | None = None,
    weights: Sequence[Sequence[float]] | None = None,
) -> np.ndarray:
    """The preferences a run trains, ``(P, M)``, from its grid settings.

    ``'auto'`` is ``'explicit'`` when ``weights`` are given, else ``'linear'`` with ``n_points`` for two objectives,
    RiC's 13 vectors for three, and a Das-Dennis lattice (``n_partitions``, default per M) beyond. ``n_points``
    sets the linear grid, ``n_partitions`` the Das-Dennis one; each applies only to its own grid.
    """
    m = as_count(n_objectives, "n_objectives")
    if grid == "auto":
        grid = "explicit" if weights else "linear" if m == 2 else "ric" if m == 3 else "das-dennis"
    if grid == "explicit":
        if not weights:
            raise ValueError("the 'explicit' grid needs weights")
        return preference_grid(weights, m)
    if grid == "linear":
        return preference_grid("linear", m, n_partitions=as_count(n_points, "n_points", minimum=2) - 1)
    if grid not in GRIDS:
        raise ValueError(f"unknown preference grid {grid!r}; use one of {', '.join(GRIDS)}")
    return preference_grid(grid, m, n_partitions=n_partitions if grid == "das-dennis" else None)


def nearest_preferences(weights: object, targets: object) -> list[int]:
    """Indices of the preferences nearest each target (Euclidean, first on ties), distinct and ascending."""
    w = np.asarray(weights, dtype=np.float64)
    t = np.asarray(targets, dtype=np.float64)
    distance = np.linalg.norm(w[None, :, :] - t[:, None, :], axis=2)
    return sorted({int(i) for i in distance.argmin(axis=1)})
