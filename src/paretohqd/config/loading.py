"""Loading a run config: dataclass defaults < YAML file < ``--section.key value`` overrides (TRL's precedence).

OmegaConf structured configs do the merging and the typing: they map onto our dataclasses as they are (Literal,
Optional, Union, nested sections and lists of sections), coerce YAML and command-line text to the declared types,
reject unknown keys, and refuse duplicate YAML keys. Their exceptions are turned into one sentence naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..text import check_text
from .base import SettingError
from .run import RunConfig

# Keys of earlier versions, and where their settings live now.
RENAMED = {
    "train.stage1_steps": "train.sft.max_steps", "train.stage1_epochs": "train.sft.num_train_epochs",
    "train.stage2_steps": "stage2.sft.max_steps", "train.stage2_epochs": "stage2.sft.num_train_epochs",
    "train.per_device_batch_size": "train.sft.per_device_train_batch_size",
    "train.learning_rate": "train.sft.learning_rate", "train.stage2_learning_rate": "stage2.sft.learning_rate",
    "train.max_length": "train.sft.max_length", "train.bf16": "train.sft.bf16", "train.lora_r": "train.lora.r",
    "train.lora_alpha": "train.lora.lora_alpha", "train.lora_dropout": "train.lora.lora_dropout",
    "train.lora_target_modules": "train.lora.target_modules", "train.logging_steps": "train.sft.logging_steps",
    "ric.offline_steps": "ric.offline.sft.max_steps", "ric.online_iterations": "ric.online.iterations",
    "ric.online_prompts": "ric.online.prompts", "ric.online_steps": "ric.online.sft.max_steps",
    "ric.online_learning_rate": "ric.online.sft.learning_rate", "ric.keep_quantile": "ric.online.keep_quantile",
    "ric.mix_samples": "ric.online.mix_samples", "ric.sampling": "ric.online.sampling",
}


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None,
                base: dict | None = None, **settings: Any) -> RunConfig:
    """Defaults < ``base`` < YAML file < ``overrides`` < ``settings``.

    ``overrides`` as on the command line (``["--select.k", "64", "--data.source=x.jsonl"]``) or as a mapping of
    dotted keys (``{"select.k": 64}``); ``settings`` as keyword arguments, a section's mapping or a dotted key
    (``load_config(path, select={"k": 16}, **{"train.sft.max_steps": 10})``). Where a value is a Python function
    (an objective's ``callable``), it is kept as its import path ``module:name``, which every process of a run can
    import again."""
    from omegaconf import OmegaConf

    merged = OmegaConf.structured(RunConfig)
    for layer, _where in ((base, "the base config"), (read_yaml(path) if path is not None else None, str(path))):
        if layer:
            _check_keys(merged, layer, "")
            _translate(lambda: merged.merge_with(layer))  # noqa: B023 (called in this pass)
    pairs = (list(_flatten(merged, overrides)) if isinstance(overrides, dict) else parse_overrides(overrides or []))
    for key, value in pairs + list(_flatten(merged, settings)):
        _set(merged, key, _importable(value, key))
    _refuse_invalid_text(OmegaConf.to_container(merged), "")
    try:
        return _translate(lambda: OmegaConf.to_object(merged))
    except SettingError as exc:
        raise UserError(_locate(merged, exc)) from None


def read_yaml(path: str | Path) -> dict:
    import yaml
    from omegaconf import OmegaConf
    from yaml import YAMLError

    path = Path(path)
    if path.is_dir():
        raise UserError(f"config file '{path}' is a folder: give a YAML file")
    if not path.is_file():
        raise UserError(f"config file '{path}' does not exist")
    try:
        if isinstance(yaml.safe_load(path.read_text(encoding="utf-8")), str):
            raise UserError(f"config file '{path}' must hold a mapping of sections, not a line of text")
        loaded = OmegaConf.to_container(OmegaConf.load(path))
    except UnicodeDecodeError:
        raise UserError(f"config file '{path}' is not UTF-8 text") from None
    except YAMLError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise UserError(f"config file '{path}' is not valid YAML: {' '.join(lines[:3])}") from None
    except UserError:
        raise
    except OSError as exc:
        raise UserError(f"config file '{path}' cannot be read: {exc.strerror or exc}") from None
    except RecursionError:
        raise UserError(f"config file '{path}' is nested too deeply to read (thousands of levels): a config is a "
                        "few levels of sections") from None
    except Exception as exc:  # noqa: BLE001 (OmegaConf refuses a top-level list or scalar with its own error types)
        raise UserError(f"config file '{path}' must hold a mapping of sections: {str(exc).splitlines()[0]}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UserError(f"config file '{path}' must hold a mapping of sections, not a {type(loaded).__name__}")
    return loaded


def parse_overrides(arguments: list[str]) -> list[tuple[str, Any]]:
    """``--a.b value`` or ``--a.b=value``; values are read as YAML (``64``, ``true``, ``[1, 0]``, ``5e-4``)."""
    from omegaconf import OmegaConf

    pairs, index = [], 0
    while index < len(arguments):
        token = arguments[index]
        if not token.startswith("--") or len(token) <= 2:
            raise UserError(f"unexpected argument '{token}': overrides look like --section.key value")
        key = token[2:]
        if "=" in key:
            key, text = key.split("=", 1)
            index += 1
        else:
            if index + 1 >= len(arguments):
                raise UserError(f"override --{key} has no value")
            text = arguments[index + 1]
            index += 2
        try:
            value = OmegaConf.to_container(OmegaConf.from_dotlist([f"value={text}"]))["value"] if text else ""
        except Exception:  # noqa: BLE001 (text OmegaConf's grammar cannot read stays text)
            value = text
        # a name's dashes are its underscores (TRL's habit); a list index (-1) keeps its sign
        key = ".".join(part if re.fullmatch(r"-?\d+", part) else part.replace("-", "_") for part in key.split("."))
        pairs.append((key, value))
    return pairs


def _refuse_invalid_text(node: Any, key: str) -> None:
    """Every string of the config (a path, a name, a template) is text: one sentence names the key of one that is
    not (a ``"\\ud800"`` escape in YAML, bytes that are not UTF-8 in an override)."""
    if isinstance(node, dict):
        for name, value in node.items():
            _refuse_invalid_text(value, f"{key}.{name}" if key else str(name))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _refuse_invalid_text(value, f"{key}[{index}]")
    elif isinstance(node, str):
        check_text(node, f"config key {key}")


def _flatten(merged, mapping: dict, prefix: str = ""):
    """(dotted key, value) of a mapping of settings: a mapping given for a config section is walked into (so it
    changes only the keys it names), one for a setting that holds a mapping (``train.sft``, ``kwargs``) is that
    setting's value; a dotted key is kept whole."""
    import dataclasses

    from omegaconf import OmegaConf

    for key, value in mapping.items():
        dotted = f"{prefix}{str(key).replace('-', '_')}"
        node = OmegaConf.select(merged, dotted, default=None) if isinstance(value, dict) else None
        if node is not None and dataclasses.is_dataclass(OmegaConf.get_type(node)):
            yield from _flatten(merged, value, dotted + ".")
        else:
            yield dotted, value


def _importable(value: Any, key: str) -> Any:
    """``value`` with every Python function in it as ``module:qualified name``; one sentence for a function that
    another process could not import by that name (a lambda, a function defined inside another, one of
    ``__main__``)."""
    if isinstance(value, dict):
        return {k: _importable(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_importable(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if not callable(value) or isinstance(value, type):
        return value
    import importlib

    module, name = getattr(value, "__module__", None), getattr(value, "__qualname__", "")
    found = None
    if module and module != "__main__" and "<" not in name:
        try:
            found = importlib.import_module(module)
            for part in name.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError):
            found = None
    if found is not value:
        raise UserError(f"{key}: the function {name or value!r} cannot be imported again by name (a lambda, a "
                        "function defined inside another or in the main script): define it at the top of a module "
                        "and pass it, or its path 'package.module:function'")
    return f"{module}:{name}"


def dump_yaml(config: RunConfig) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.structured(config), sort_keys=False)


def from_dict(cls: type, values: dict) -> Any:
    """A section rebuilt from ``dataclasses.asdict`` output (nested sections included), validated as when
    loaded."""
    from omegaconf import OmegaConf

    node = OmegaConf.structured(cls)
    _translate(lambda: node.merge_with(values))
    return _translate(lambda: OmegaConf.to_object(node))


# ---------------------------------------------------------------------------------------------------------------


def _set(merged, dotted: str, value: Any) -> None:
    """Walk the dotted key first, so that list indices and values-as-sections get a plain sentence."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    parts = dotted.split(".")
    node = merged
    for depth, part in enumerate(parts[:-1]):
        here = ".".join(parts[: depth + 1])
        if isinstance(node, ListConfig):
            node = node[_list_index(node, part, here)]
        elif isinstance(node, DictConfig):
            _known(node, part, here)
            child = node._get_node(part)
            element = node._metadata.element_type
            if child is None and dataclasses.is_dataclass(element):
                node[part] = element()  # a new entry of a mapping of sections (execution.resources.sft)
                child = node._get_node(part)
            if child is None or child._is_none():
                break  # an empty optional section or mapping: OmegaConf creates it below
            node = node[part]
        if not isinstance(node, (DictConfig, ListConfig)):
            raise UserError(f"override '{dotted}': '{here}' is a value, not a section")
    if isinstance(node, ListConfig):
        _list_index(node, parts[-1], dotted)
    elif isinstance(node, DictConfig) and len(parts) > 0:
        _known(node, parts[-1], dotted)
    if isinstance(value, dict):
        _check_keys(OmegaConf.select(merged, dotted), value, dotted)
    _translate(lambda: OmegaConf.update(merged, dotted, value, merge=True))


def _list_index(node, part: str, where: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise UserError(f"override '{where}': '{part}' is not an index of a list of {len(node)} items")
    return int(part)


def _known(node, key: str, where: str) -> None:
    """A typed section must know the key; free mappings (train.sft, kwargs) take any key."""
    from omegaconf import OmegaConf

    schema = OmegaConf.get_type(node)
    if schema is None or not dataclasses.is_dataclass(schema):
        return
    names = [f.name for f in dataclasses.fields(schema)]
    if key not in names:
        raise UserError(_unknown(where, names))


def _check_keys(node, layer: Any, where: str) -> None:
    """Unknown keys anywhere in a YAML layer, named with their full dotted path."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if not isinstance(layer, dict) or not isinstance(node, DictConfig):
        return
    schema = OmegaConf.get_type(node)
    typed = schema is not None and dataclasses.is_dataclass(schema)
    for key, value in layer.items():
        path = f"{where}.{key}" if where else str(key)
        if typed and key not in [f.name for f in dataclasses.fields(schema)]:
            raise UserError(_unknown(path, [f.name for f in dataclasses.fields(schema)]))
        child = node._get_node(key) if typed else None
        _check_shape(child, value, path)
        child = node.get(key) if typed else None
        if isinstance(value, dict) and isinstance(child, DictConfig):
            _check_keys(child, value, path)
        if isinstance(value, list) and isinstance(child, ListConfig) and child._metadata.element_type is not Any:
            element = child._metadata.element_type
            if dataclasses.is_dataclass(element):
                for index, item in enumerate(value):
                    _check_keys(OmegaConf.structured(element), item, f"{path}.{index}")


def _check_shape(child, value: Any, path: str) -> None:
    """A section given as a value or a list, a list given as a mapping: one sentence naming the key."""
    from omegaconf import DictConfig, ListConfig

    if value is None or child is None:
        return
    if isinstance(child, DictConfig) and not isinstance(value, dict):
        raise UserError(f"{path} must be a mapping of settings, not {_shown(value)}")
    if isinstance(child, ListConfig) and not isinstance(value, list):
        raise UserError(f"{path} must be a list, not {_shown(value)}")


def _shown(value: Any) -> str:
    kind = {dict: "the mapping ", list: "the list "}.get(type(value), "")
    return f"{kind}{value!r}"[:80]


def _unknown(path: str, valid: list[str]) -> str:
    if path in RENAMED:
        return f"unknown key '{path}': it is now '{RENAMED[path]}'"
    return f"unknown key '{path}' (valid keys: {', '.join(valid)}){did_you_mean(path.rsplit('.', 1)[-1], valid)}"


def did_you_mean(key: str, valid: list[str]) -> str:
    """``"; did you mean 'learning_rate'?"`` for a near miss, else nothing."""
    close = difflib.get_close_matches(key, valid, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _translate(call):
    """Run an OmegaConf call; its validation errors become one sentence naming the key."""
    from omegaconf.errors import ConfigKeyError, ConfigTypeError, OmegaConfBaseException, ValidationError

    try:
        return call()
    except ConfigKeyError as exc:
        raise UserError(f"unknown key '{_key_of(exc)}'") from None
    except ValidationError as exc:
        raise UserError(_type_sentence(exc)) from None
    except (ConfigTypeError, OmegaConfBaseException) as exc:
        key = _key_of(exc)
        raise UserError(f"{key + ': ' if key else ''}{str(exc).splitlines()[0]}") from None


def _key_of(exc) -> str:
    return str(getattr(exc, "full_key", "") or "").replace("[", ".").replace("]", "")


def _type_sentence(exc) -> str:
    key, value = _key_of(exc), getattr(exc, "value", None)
    message = str(exc).splitlines()[0]
    if "expected one of" in message:
        choices = message.split("expected one of", 1)[-1].strip(" []").replace("'", "")
        return f"{key} is {value!r}; it must be one of: {choices}"
    for marker, phrase in (("not a valid bool", "true or false"), ("converted to Integer", "an integer"),
                           ("converted to Float", "a number"), ("is not a ListConfig", "a list"),
                           ("is not a DictConfig", "a mapping"), ("is not a subclass", "a mapping")):
        if marker in message:
            return f"{key} must be {phrase}, not {value!r}"
    return f"{key}: {message}"


def _locate(merged, exc: SettingError) -> str:
    """Which section raised: try building each section alone, deepest first, and prefix its path."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    message = str(exc)

    def search(node, path: str) -> str | None:
        children = node.items() if isinstance(node, DictConfig) else enumerate(node)
        for key, child in children:
            if isinstance(child, (DictConfig, ListConfig)):
                found = search(child, f"{path}.{key}" if path else str(key))
                if found:
                    return found
        if path and isinstance(node, DictConfig) and OmegaConf.get_type(node) is not None:
            try:
                OmegaConf.to_object(node)
            except SettingError as inner:
                if str(inner) == message:
                    return path
        return None

    path = search(merged, "")
    if not path:
        return message
    first = message.split(" ", 1)[0].split(".")[0]
    schema = OmegaConf.get_type(OmegaConf.select(merged, path))
    fields = {f.name for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else set()
    return f"{path}.{message}" if first in fields else f"{path} {message}"
