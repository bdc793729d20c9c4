"""Pure-numpy Pareto machinery for ParetoHqD (imports only numpy, and moocore and scipy lazily inside functions).

Rewards are maximised everywhere (``maximise=True``); points are ``(n_points, n_objectives)`` arrays.

- ``layers``: exact non-dominated sorting, fast when only the first layers are needed.
- ``normalise``: per-objective min-max / robust normalisation with the ideal point at (1, ..., 1).
- ``directions``: preferences and their rays.
- ``grids``: preference grids (linear, RiC, Das-Dennis, explicit) and the stage-2 representatives.
- ``select``: the ParetoHqD selection (pool of first layers, k nearest samples per preference ray).
- ``indicators``: hypervolume (raw and normalised over a union of fronts), non-dominance.
- ``interpolation``: which trained preferences enclose a new one, and with what mix (served models).
"""

from ._validate import first_non_finite
from .directions import preference_direction, ray_distance, validate_preferences
from .grids import (
    das_dennis,
    linear_grid,
    nearest_preferences,
    preference_grid,
    representative_preferences,
    resolve_grid,
    ric_grid_3,
)
from .indicators import hypervolume, is_nondominated, normalised_hypervolume
from .layers import first_layers_pool, nondominated_layers
from .normalise import NormalisationStats, check_finite_scores, fit_normalisation
from .select import (
    CandidatePool,
    Selection,
    SelectionResult,
    candidate_pool,
    default_k,
    default_min_pool,
    select_for_preferences,
    select_from_pool,
)

__all__ = [
    "CandidatePool",
    "NormalisationStats",
    "Selection",
    "SelectionResult",
    "candidate_pool",
    "check_finite_scores",
    "das_dennis",
    "default_k",
    "default_min_pool",
    "first_layers_pool",
    "first_non_finite",
    "fit_normalisation",
    "hypervolume",
    "is_nondominated",
    "linear_grid",
    "nearest_preferences",
    "nondominated_layers",
    "normalised_hypervolume",
    "preference_direction",
    "preference_grid",
    "ray_distance",
    "representative_preferences",
    "resolve_grid",
    "ric_grid_3",
    "select_for_preferences",
    "select_from_pool",
    "validate_preferences",
]

# Selection over score chunks (bounded memory, identical result): appended so as not to reorder the list above.
from .chunked import ChunkedPool, chunked_candidate_pool, select_for_preferences_chunked

__all__ += ["ChunkedPool", "chunked_candidate_pool", "select_for_preferences_chunked"]
