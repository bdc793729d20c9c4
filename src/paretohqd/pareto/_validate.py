"""Input checks shared by the pareto modules; every failure is a ValueError with one readable sentence.

The CLI turns ValueError into exit code 2 and prints the message, so messages name the argument, the objective and
the first offending row rather than dumping arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def objective_label(j: int, names: Sequence[str] | None) -> str:
    """``objective 1`` or ``objective 'helpful'`` (0-based index when no names are given)."""
    if names is not None and j < len(names):
        return f"objective {names[j]!r}"
    return f"objective {j}"


def as_points(
    points: object,
    what: str = "points",
    names: Sequence[str] | None = None,
    allow_empty: bool = True,
) -> np.ndarray:
    """Return ``points`` as a float64 ``(n_points, n_objectives)`` array, or raise ValueError.

    Rejects arrays that are not 2-D, have no objective column, are not numeric, or contain NaN/inf (naming the
    objective and the first bad row). Values are converted to float64, as moocore does internally, so that our
    comparisons and moocore's see the same numbers.
    """
    try:
        arr = np.asarray(points)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"{what} must be a rectangular (n_points, n_objectives) array: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{what} must be numeric, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{what} must be real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array of shape (n_points, n_objectives), got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{what} must have at least one objective column, got shape {arr.shape}")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{what} is empty (0 rows)")
    if names is not None and len(names) != arr.shape[1]:
        raise ValueError(f"{what} has {arr.shape[1]} objective columns but {len(names)} objective names were given")
    arr = np.asarray(arr, dtype=np.float64)
    check_finite(arr, what, names)
    return arr


def first_non_finite(arr: np.ndarray) -> tuple[int, int, str] | None:
    """``(row, column, kind)`` of the first NaN or +-inf in column order (kind: 'NaN', 'inf' or '-inf'), or None.

    Column order first, so that a message names the reward model that produced the bad value."""
    arr = np.asarray(arr, dtype=np.float64)
    finite = np.isfinite(arr)
    if finite.all():
        return None
    if arr.ndim == 1:
        arr, finite = arr[:, None], finite[:, None]
    j = int(np.flatnonzero(~finite.all(axis=0))[0])
    i = int(np.flatnonzero(~finite[:, j])[0])
    value = arr[i, j]
    return i, j, "NaN" if np.isnan(value) else ("inf" if value > 0 else "-inf")


def check_finite(arr: np.ndarray, what: str = "scores", names: Sequence[str] | None = None) -> None:
    """Raise ValueError naming the first objective (column order) and row holding NaN or +-inf."""
    found = first_non_finite(arr)
    if found is not None:
        i, j, kind = found
        raise ValueError(f"{what} contain {kind} in {objective_label(j, names)} (row {i})")


def as_count(value: object, name: str, minimum: int = 1) -> int:
    """An integer argument such as k or min_count; bools and non-integral floats are rejected."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, (float, np.floating)):
        if not float(value).is_integer():
            raise ValueError(f"{name} must be an integer, got {value!r}")
        value = int(value)
    if not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value
