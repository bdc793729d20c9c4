"""The run directory, the contract between units: the resolved config, the environment, the manifest, and every
unit's outputs. The manifest records, per unit, its key, status, outputs and wall seconds, and per stage the sums.
"""

from __future__ import annotations

import time
from pathlib import Path

from .. import io
from ..env import environment
from ..errors import UserError

MANIFEST = "manifest.json"


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

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


def stage_summary(units: dict) -> dict:
    """Per stage: how many units, how many done, and their wall seconds."""
    stages: dict[str, dict] = {}
    for entry in units.values():
        stage = stages.setdefault(entry.get("stage", "other"), {"units": 0, "done": 0, "wall_seconds": 0.0})
        stage["units"] += 1
        stage["done"] += entry.get("status") == "done"
        stage["wall_seconds"] += entry.get("wall_seconds", 0.0)
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
