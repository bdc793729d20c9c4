"""Versions and hardware: one lookup of installed package versions, for bug reports, env.json and objective
identities."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version

REPORTED_PACKAGES = ("paretohqd", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "numpy",
                     "moocore", "pandas", "pyarrow", "omegaconf", "sentence-transformers", "gguf")


def quiet_library_warnings() -> None:
    """Silence the libraries' notes to their own callers (deprecations inside trl -> transformers): not the user's
    to act on, and on stderr they would bury the one sentence that is. Repeating it adds no filter twice."""
    import warnings

    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(transformers|trl|peft|accelerate)(\.|$)")


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[int]:
    """Compute with ``count`` torch threads inside the block, then restore the caller's; yields the caller's count.
    The last bits of float results depend on it: threads sum in another order."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield before
    finally:
        torch.set_num_threads(before)


def package_version(name: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def package_versions(names=REPORTED_PACKAGES) -> dict[str, str | None]:
    return {name: package_version(name) for name in names}


def cpu_model() -> dict:
    """The processor by name, and the instruction sets that decide which kernels compute (and so the last bits of
    every float result): AMX on recent Intel processors, AVX-512, AVX2."""
    name, flags = None, set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = (part.strip() for part in line.partition(":"))
                if key == "model name" and name is None:
                    name = value
                elif key == "flags":
                    flags = set(value.split())
                    break
    except OSError:  # not Linux
        pass
    return {"cpu": name or platform.processor() or platform.machine(),
            "cpu_features": sorted(flags & {"amx_bf16", "amx_tile", "avx512f", "avx512_bf16", "avx2"})}


def environment() -> dict:
    """Versions and hardware, for bug reports (``paretohqd env``) and ``RUN/env.json``."""
    info = {"python": sys.version.split()[0], "platform": platform.platform(), "processor": platform.machine(),
            **cpu_model(), "cpu_count": os.cpu_count(), "packages": package_versions()}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["cuda"] = torch.cuda.is_available()
        if info["cuda"]:
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return info


def format_environment(info: dict) -> str:
    lines = [f"- {key}: {value}" for key, value in info.items() if key != "packages"]
    lines += [f"- {name}: {ver or 'not installed'}" for name, ver in info["packages"].items()]
    return "\n".join(lines)
