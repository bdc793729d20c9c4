"""Reward objectives: one protocol, declared once in config by name, built here.

Types: ``builtin`` (offline, see :mod:`paretohqd.rewards.builtin`), ``hf`` (a sequence-classification reward model
by Hub id or path), ``callable`` (any Python function by dotted path) and ``column`` (a score already in the data).
Each objective's *identity* (what its scores depend on, never how fast or where they are computed) keys every score
shard.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import io
from ..env import package_version
from ..errors import UserError, first_line
from ..model_files import load_model_config
from .base import Objective, as_scores
from .builtin import BUILTINS, PACKAGES, FunctionObjective, build_builtin
from .embeddings import ENCODER_PACKAGE, ENCODING

__all__ = ["BUILTINS", "Objective", "as_scores", "build_objective", "build_objectives", "objective_identity"]


_checked: set[str] = set()


def check_objective(config: dict) -> None:
    """Fail before any work, as the policy does (``check_model``), on an objective that cannot load: an ``hf``
    model folder that is missing or holds no model, weights or tokenizer, a Hub id that is not there or not cached,
    a ``logit_index`` the model has no output for, a ``callable`` that cannot be imported. ``config``: the
    objective's settings as a mapping. Each distinct objective is checked once per process."""
    memo = io.digest(config)
    if memo in _checked:
        return
    name = config["name"]
    if config["type"] == "hf":
        model_config = load_model_config(config["model"], config.get("revision"), f"objective '{name}': model")
        outputs = getattr(model_config, "num_labels", 1)
        if not 0 <= config.get("logit_index", 0) < outputs:
            raise UserError(f"objective '{name}': logit_index {config.get('logit_index', 0)}, but the model "
                            f"'{config['model']}' has {outputs} output(s) (num_labels)")
    elif config["type"] == "callable":
        resolve_callable(config["callable"], name)
    _checked.add(memo)


def build_objectives(configs: list) -> list[Objective]:
    return [build_objective(config) for config in configs]


def build_objective(config) -> Objective:
    """Instantiate the objective described by an :class:`~paretohqd.config.ObjectiveConfig`."""
    if config.type == "builtin":
        builtin = _builtin_name(config)
        try:
            return build_builtin(config.name, builtin, config.batch_size, dict(config.kwargs))
        except (TypeError, ValueError) as exc:
            raise UserError(f"objective '{config.name}': {exc}") from None
    if config.type == "hf":
        from .hf import HFRewardModel

        return HFRewardModel(config.name, config.model, config.input_format, config.logit_index, config.max_length,
                             config.dtype, config.pad_token, config.device, config.template, config.context_column,
                             config.revision)
    if config.type == "callable":
        function = resolve_callable(config.callable, config.name)
        kwargs = dict(config.kwargs)

        def call(batch: pd.DataFrame) -> np.ndarray:
            try:
                values = function(batch["prompt"].tolist(), batch["response"].tolist(), **kwargs)
            except Exception as exc:  # noqa: BLE001 (the user's code: whatever it raises is named, with where)
                raise UserError(f"objective '{config.name}': callable '{config.callable}' raised "
                                f"{type(exc).__name__}: {first_line(exc)} (on a batch of {len(batch)} samples from "
                                f"'{batch['id'].iloc[0]}')") from None
            return as_scores(values, len(batch), config.name)

        return FunctionObjective(config.name, call)
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

        return FunctionObjective(config.name, read)
    raise UserError(f"objective '{config.name}' has unknown type '{config.type}'")


def objective_identity(config) -> dict[str, Any]:
    """Everything an objective's scores depend on, without loading it: its settings that matter for its type and
    the content of what it runs (a head file, a local model folder, a callable's source, a package version).

    Its name, batch size and device are left out: they cannot change a score (the batched-vs-single self-check
    holds scoring to that)."""
    if config.type == "builtin":
        builtin = _builtin_name(config)
        identity: dict[str, Any] = {"type": "builtin", "builtin": builtin, "kwargs": dict(config.kwargs),
                                    "package": PACKAGES[builtin],
                                    "version": package_version(PACKAGES[builtin]) if PACKAGES[builtin] else None}
        if PACKAGES[builtin] == ENCODER_PACKAGE:
            identity["encoding"] = ENCODING
        if builtin in ("harmless", "helpful"):
            from .heads import SHIPPED_HEADS

            identity["head"] = io.file_sha256(SHIPPED_HEADS[builtin])
        return identity
    if config.type == "hf":
        identity = {key: getattr(config, key) for key in ("type", "model", "revision", "input_format", "logit_index",
                                                           "max_length", "dtype", "pad_token")}
        if config.input_format == "template":
            identity["template"] = config.template
        if config.input_format == "reversed_pair":
            identity["context_column"] = config.context_column
        if Path(config.model).is_dir():
            identity["content"] = io.content_fingerprint(config.model)
        return identity
    if config.type == "callable":
        return {"type": "callable", "callable": config.callable, "kwargs": dict(config.kwargs),
                "source": _source_digest(config.callable)}
    return {"type": "column", "column": config.column}


def _builtin_name(config) -> str:
    builtin = config.builtin or config.name
    if builtin not in BUILTINS:
        raise UserError(f"unknown objective '{builtin}' (built-ins: {', '.join(BUILTINS)}; or set type to hf, "
                        "callable or column)")
    return builtin


def _source_digest(path: str) -> str | None:
    """The callable's module source: editing the function rescores."""
    module_name = path.partition(":")[0] if ":" in path else path.rpartition(".")[0]
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None) if spec else None
    return io.file_sha256(origin) if origin and Path(origin).is_file() else None


def resolve_callable(path: str, objective: str) -> Callable[..., Any]:
    """'package.module:function' or 'package.module.function' -> the function."""
    module_name, _, attribute = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attribute:
        raise UserError(f"objective '{objective}': callable '{path}' must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"objective '{objective}': cannot import module '{module_name}' ({exc})") from None
    except Exception as exc:  # noqa: BLE001 (the user's module fails as it is imported)
        raise UserError(f"objective '{objective}': importing module '{module_name}' raised "
                        f"{type(exc).__name__}: {first_line(exc)}") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise UserError(f"objective '{objective}': '{module_name}' has no function '{attribute}'")
    return function
