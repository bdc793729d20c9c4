"""Reward objectives: one protocol, declared once in config by name, built here.

Types: ``builtin`` (offline, see :mod:`paretohqd.rewards.builtin`), ``hf`` (a sequence-classification reward model
by Hub id or path), ``callable`` (any Python function by dotted path) and ``column`` (a score already in the data).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..errors import UserError
from .base import Objective, as_scores
from .builtin import BUILTINS, FunctionObjective

__all__ = ["BUILTINS", "Objective", "as_scores", "build_objective", "build_objectives"]


def build_objectives(configs: list) -> list[Objective]:
    return [build_objective(config) for config in configs]


def build_objective(config) -> Objective:
    """Instantiate the objective described by an :class:`~paretohqd.config.ObjectiveConfig`."""
    if config.type == "builtin":
        builtin = config.builtin or config.name
        if builtin not in BUILTINS:
            raise UserError(f"unknown objective '{builtin}' (built-ins: {', '.join(BUILTINS)}; or set type to hf, "
                            "callable or column)")
        from .builtin import build_builtin

        try:
            return build_builtin(config.name, builtin, config.batch_size, dict(config.kwargs))
        except (TypeError, ValueError) as exc:
            raise UserError(f"objective '{config.name}': {exc}") from None
    if config.type == "hf":
        from .hf import HFRewardModel

        return HFRewardModel(config.name, config.model, config.input_format, config.logit_index, config.max_length,
                             config.dtype, config.pad_token, config.device, config.template, config.context_column)
    if config.type == "callable":
        function = resolve_callable(config.callable, config.name)
        kwargs = dict(config.kwargs)

        def call(batch: pd.DataFrame) -> np.ndarray:
            return as_scores(function(batch["prompt"].tolist(), batch["response"].tolist(), **kwargs),
                             len(batch), config.name)

        return FunctionObjective(config.name, call, {"callable": config.callable, "kwargs": kwargs})
    if config.type == "column":
        column = config.column

        def read(batch: pd.DataFrame) -> np.ndarray:
            if column not in batch.columns:
                raise UserError(f"objective '{config.name}' reads column '{column}', which the data does not have "
                                f"(columns: {', '.join(batch.columns)})")
            values = pd.to_numeric(batch[column], errors="coerce")
            text = values.isna() & batch[column].notna()
            if text.any():
                row = int(np.flatnonzero(text.to_numpy())[0])
                raise UserError(f"column '{column}' of objective '{config.name}' holds {batch[column].iloc[row]!r} "
                                f"for sample '{batch['id'].iloc[row]}', which is not a number")
            return values.to_numpy(dtype=np.float64)

        return FunctionObjective(config.name, read, {"column": column})
    raise UserError(f"objective '{config.name}' has unknown type '{config.type}'")


def resolve_callable(path: str, objective: str) -> Callable[..., Any]:
    """'package.module:function' or 'package.module.function' -> the function."""
    module_name, _, attribute = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attribute:
        raise UserError(f"objective '{objective}': callable '{path}' must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"objective '{objective}': cannot import module '{module_name}' ({exc})") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise UserError(f"objective '{objective}': '{module_name}' has no function '{attribute}'")
    return function
