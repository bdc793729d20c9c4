"""The Objective protocol: anything that maps a batch of samples to one maximised reward per sample."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from ..errors import UserError


@runtime_checkable
class Objective(Protocol):
    """A reward signal to maximise.

    ``score`` receives a batch of the sample table (columns ``id``, ``prompt``, ``response`` and any kept columns)
    and returns a float array of shape ``(len(batch),)``. Scores must not depend on how samples are batched.
    What determines the scores is the objective's config identity (:func:`paretohqd.rewards.objective_identity`),
    which keys every score shard.
    """

    name: str

    def score(self, batch: pd.DataFrame) -> np.ndarray: ...


def as_scores(values: Any, expected: int, objective: str) -> np.ndarray:
    """Check an objective's output: one float per sample (NaN is caught later, with its row)."""
    if values is None or np.ndim(values) == 0:
        raise UserError(f"objective '{objective}' returned {values!r} for a batch of {expected} samples; it must "
                        "return one score per sample (a list or array)")
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise UserError(f"objective '{objective}' returned scores that are not numbers "
                        f"(for example {_first(values)!r})") from None
    if array.shape[0] != expected:
        raise UserError(f"objective '{objective}' returned {array.shape[0]} scores for {expected} samples")
    return array


def _first(values: Any) -> Any:
    try:
        return next(iter(values))
    except (TypeError, StopIteration):
        return values
