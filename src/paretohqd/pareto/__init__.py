"""Pure-numpy Pareto machinery for ParetoHqD (imports only numpy, and moocore lazily inside functions).

Rewards are maximised everywhere (``maximise=True``); points are ``(n_points, n_objectives)`` arrays.

- ``layers``: exact non-dominated sorting, fast when only the first layers are needed.
- ``normalise``: per-objective min-max / robust normalisation with the ideal point at (1, ..., 1).
- ``directions``: preferences, their rays, and preference grids (linear, RiC, Das-Dennis).
- ``select``: the ParetoHqD selection (pool of first layers, k nearest samples per preference ray).
- ``indicators``: hypervolume (raw and normalised over a union of fronts), non-dominance.
"""

from .directions import (
    das_dennis,
    linear_grid,
    preference_direction,
    preference_grid,
    ray_distance,
    representative_preferences,
    ric_grid_3,
    validate_preferences,
)
from .indicators import hypervolume, is_nondominated, normalised_hypervolume
from .layers import first_layers_pool, nondominated_layers
from .normalise import NormalisationStats, check_finite_scores, fit_normalisation
from .select import Selection, SelectionResult, default_min_pool, select_for_preferences

__all__ = [
    "nondominated_layers",
    "first_layers_pool",
    "NormalisationStats",
    "fit_normalisation",
    "check_finite_scores",
    "validate_preferences",
    "preference_direction",
    "ray_distance",
    "das_dennis",
    "linear_grid",
    "ric_grid_3",
    "preference_grid",
    "representative_preferences",
    "Selection",
    "SelectionResult",
    "select_for_preferences",
    "default_min_pool",
    "hypervolume",
    "normalised_hypervolume",
    "is_nondominated",
]
