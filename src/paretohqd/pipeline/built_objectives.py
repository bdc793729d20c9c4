"""The objectives a process has built, kept for its later units: a reward model is loaded once per process, not
once per score shard, and let go before a vLLM engine needs the GPU memory it holds."""

from __future__ import annotations

from .. import io
from ..config import ObjectiveConfig, from_dict
from ..rewards import build_objective
from ..rewards.base import Objective

_BUILT: dict[str, Objective] = {}


def built_objective(config: dict) -> Objective:
    """The objective ``config`` (an ObjectiveConfig as a dict) describes, built once per process."""
    key = io.digest(config)
    if key not in _BUILT:
        _BUILT[key] = build_objective(from_dict(ObjectiveConfig, config))
    return _BUILT[key]


def release_built_objectives() -> None:
    """Forget every objective this process built (their models go with the last reference)."""
    _BUILT.clear()
