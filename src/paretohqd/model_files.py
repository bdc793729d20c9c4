"""Model folders and Hub ids as a run names them (the policy, a reward model): whether one can load, checked before
any work, each failure one sentence naming the setting."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from .errors import UserError, first_line

WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json", "*.gguf")


def is_local_path(name: str) -> bool:
    """A model named by a folder (one that exists, or a name only a path can have), not by a Hub id."""
    return Path(name).expanduser().exists() or name.startswith((".", "/", "~")) or name.count("/") > 1 \
        or "\\" in name



def load_model_config(name: str, revision: str | None, key: str):
    """The transformers config of the model ``name`` (a folder, checked first, or a Hub id), named ``key`` in the
    error when it cannot load."""
    from transformers import AutoConfig

    if is_local_path(name):
        path = Path(name).expanduser()
        check_model_folder(name, path, key)
        try:
            return AutoConfig.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            raise UserError(f"{key} '{name}': its config.json cannot be read ({first_line(exc)})") from None
    try:
        return AutoConfig.from_pretrained(name, **({"revision": revision} if revision else {}))
    except (OSError, ValueError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        where = ("it is not a local folder, and the Hub is offline (HF_HUB_OFFLINE=1) with no cached copy"
                 if offline else "it is not a local folder, and the Hub has no such model or cannot be reached")
        raise UserError(f"{key} '{name}' cannot be loaded: {where} ({first_line(exc)})") from None


def check_model_folder(name: str, path: Path, key: str) -> None:
    """A model folder holds a config, weights torch loads safely and a tokenizer; one sentence for what it lacks."""
    if not path.exists():
        raise UserError(f"{key} '{name}': no such folder")
    if not path.is_dir():
        raise UserError(f"{key} '{name}' is a file; give the folder that holds the model")
    if not (path / "config.json").is_file():
        if (path / "adapter_config.json").is_file():
            raise UserError(f"{key} '{name}' holds a LoRA adapter, not a model: give its base model "
                            "(the adapter's base_model_name_or_path)")
        raise UserError(f"{key} '{name}' holds no model: it has no config.json")
    if not any(any(path.glob(pattern)) for pattern in WEIGHT_FILES):
        raise UserError(f"{key} '{name}' holds no weights (no .safetensors or pytorch_model .bin)")
    pickled = sorted(path.glob("pytorch_model*.bin"))
    if pickled and not any(path.glob("*.safetensors")):
        import torch

        try:  # memory-mapped: nothing is read but what the unpickler needs to refuse or accept it
            torch.load(pickled[0], weights_only=True, mmap=True, map_location="cpu")
        except pickle.UnpicklingError as exc:
            raise UserError(f"{key} '{name}': {pickled[0].name} is a pickle that torch refuses to load "
                            f"safely ({first_line(exc)[:120]}); convert the weights to safetensors") from None
    if not any((path / file).is_file() for file in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        raise UserError(f"{key} '{name}' has no tokenizer (tokenizer.json or tokenizer_config.json)")
