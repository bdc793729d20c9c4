"""The run directory, the contract between units: the resolved config, the environment, the manifest, and every
unit's outputs. The manifest records, per unit, its key, status, outputs, wall seconds (every recorded attempt),
attempts, the CUDA devices it held and its GPU-seconds, and per stage the sums.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from .. import io
from ..env import environment
from ..errors import UserError

MANIFEST = "manifest.json"
COST_SIDECAR = ".cost.json"
"""Suffix of the record beside a content-addressed unit's first output (a cached score shard): its wall seconds,
GPU-seconds and CUDA devices, written by the run that computed it and read by every run that finds it cached."""
EVAL_SCORES = "eval/scores.parquet"


def cuda_devices_in_use(world_size: int = 1) -> int:
    """The CUDA devices this process holds: ``torch.cuda.device_count()`` once CUDA is initialised here (a unit
    ran on cuda: the process holds them from then on), 0 before that or without torch or CUDA; in a launch of
    ``world_size`` > 1 processes, one device per process once CUDA is in use. Never initialises CUDA itself."""
    torch = sys.modules.get("torch")
    if torch is None:
        return 0
    try:
        count = int(torch.cuda.device_count()) if torch.cuda.is_initialized() else 0
    except Exception:  # noqa: BLE001 - a broken driver is no reason to lose a finished unit's record
        return 0
    return world_size if world_size > 1 and count else count


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def check_writable(self) -> None:
        """Fail in one sentence, before any work, when the run directory cannot be written: it is a file, it lies
        under a file, or the file system refuses a new file in it (read-only, no permission, full)."""
        check_writable_folder(self.path, "output_dir")

    def init(self, config_yaml: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        io.write_text(self.path / "config.resolved.yaml", config_yaml)
        io.write_json(self.path / "env.json", environment())

    def resolve(self, path: str) -> Path:
        return Path(path) if Path(path).is_absolute() else self.path / path

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def manifest(self) -> dict:
        if not self.manifest_path.exists():
            return {"units": {}, "stages": {}}
        manifest = io.read_json(self.manifest_path)
        manifest.setdefault("units", {})
        return manifest

    def write_manifest(self, manifest: dict) -> None:
        manifest["stages"] = stage_summary(manifest["units"])
        manifest["updated"] = time.time()
        io.write_json(self.manifest_path, manifest)


def check_writable_folder(path: Path, setting: str) -> None:
    """``path`` is, or can become, a folder this process can write a file into; else one sentence naming
    ``setting`` and the reason."""
    path = Path(path)
    for folder in [path, *path.parents]:
        if folder.is_symlink() and not folder.exists():
            raise UserError(f"{setting} '{path}'{'' if folder == path else f' lies under {folder!s}, which'} is a "
                            "symbolic link to nothing (dangling, or a link loop): give a folder")
        if folder.exists():
            if not folder.is_dir():
                where = "is a file" if folder == path else f"lies under '{folder}', which is a file"
                raise UserError(f"{setting} '{path}' {where}: give a folder")
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check.") as probe:
            probe.write(b"ok\n")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        raise UserError(f"{setting} '{path}' cannot be written: {exc.strerror or exc}") from None


def stage_summary(units: dict) -> dict:
    """Per stage: how many units, how many done, and their wall seconds and GPU-seconds (as this run directory's
    units recorded them: a shard found in a shared cache is not a unit of this run)."""
    stages: dict[str, dict] = {}
    for entry in units.values():
        stage = stages.setdefault(entry.get("stage", "other"),
                                  {"units": 0, "done": 0, "wall_seconds": 0.0, "gpu_seconds": 0.0})
        stage["units"] += 1
        stage["done"] += entry.get("status") == "done"
        stage["wall_seconds"] += entry.get("wall_seconds", 0.0)
        stage["gpu_seconds"] += entry.get("gpu_seconds", 0.0)
    for stage in stages.values():
        stage["status"] = "done" if stage["done"] == stage["units"] else "incomplete"
    return stages


def read_metrics(run_dir: str | Path) -> dict:
    """A finished run's ``eval/metrics.json``, with its run directory."""
    path = Path(run_dir) / "eval" / "metrics.json"
    if not path.is_file():
        raise UserError(f"{run_dir} has no eval/metrics.json: finish that run (paretohqd run CONFIG) first")
    metrics = io.read_json(path)
    metrics["run_dir"] = str(run_dir)
    return metrics


def read_eval_scores(run_dir: str | Path):
    """A finished run's per-(model, prompt) scores, ``eval/scores.parquet``."""
    import pandas as pd

    path = Path(run_dir) / EVAL_SCORES
    if not path.is_file():
        raise UserError(f"{path} is missing (a run evaluated by an older version of paretohqd, or whose evaluation "
                        "did not finish): run `paretohqd evaluate CONFIG` for that run first")
    return pd.read_parquet(path)
