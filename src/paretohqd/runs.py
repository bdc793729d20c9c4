"""The run directory: the contract between stages.

``manifest.json`` records, per stage, the hash of the settings it depends on, its status and wall seconds. A stage
whose hash matches a finished entry is skipped; one whose settings changed reruns (and so, through the hash chain,
does everything downstream). Units inside a stage (score shards, preference files) are separate files written
atomically, so an interrupted stage resumes from the last finished unit.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from . import io
from .config import RunConfig, dump_yaml


@dataclass
class StageRecord:
    name: str
    config_hash: str
    skipped: bool
    wall_seconds: float = 0.0


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    # Stage folders, named once here.
    @property
    def scores(self) -> Path:
        return self.path / "scores"

    @property
    def selection(self) -> Path:
        return self.path / "selection"

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    def init(self, config: RunConfig) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        io.write_text(self.path / "config.resolved.yaml", dump_yaml(config))
        io.write_json(self.path / "env.json", environment())

    def manifest(self) -> dict:
        if not self.manifest_path.exists():
            return {"stages": {}}
        return io.read_json(self.manifest_path)

    def is_done(self, stage: str, config_hash: str) -> bool:
        entry = self.manifest()["stages"].get(stage)
        return bool(entry) and entry.get("status") == "done" and entry.get("config_hash") == config_hash

    def _update(self, stage: str, **fields) -> None:
        manifest = self.manifest()
        entry = manifest["stages"].setdefault(stage, {})
        entry.update(fields)
        io.write_json(self.manifest_path, manifest)

    @contextlib.contextmanager
    def stage(self, stage: str, config_hash: str, outputs: tuple[Path, ...] = (),
              force: bool = False) -> Iterator[StageRecord]:
        """Run a stage body unless it already finished with the same settings and its outputs exist.

        Records status and wall time in the manifest. The body checks ``record.skipped``.
        """
        done = self.is_done(stage, config_hash) and all(Path(p).exists() for p in outputs)
        record = StageRecord(stage, config_hash, skipped=not force and done)
        if record.skipped:
            yield record
            return
        previous = self.manifest()["stages"].get(stage, {})
        self._update(stage, status="running", config_hash=config_hash, started=time.time())
        start = time.perf_counter()
        yield record
        record.wall_seconds = time.perf_counter() - start
        # Resumed stages keep adding: wall seconds measure the whole cost of the stage, not the last attempt.
        spent = previous.get("wall_seconds", 0.0) if previous.get("config_hash") == config_hash else 0.0
        self._update(stage, status="done", finished=time.time(), wall_seconds=spent + record.wall_seconds)


def environment() -> dict:
    """Versions and hardware, for bug reports and env.json."""
    from importlib.metadata import PackageNotFoundError, version

    packages = {}
    for name in ("paretohqd", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "numpy", "moocore",
                 "pandas", "pyarrow", "sentence-transformers", "gguf"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    info = {"python": sys.version.split()[0], "platform": platform.platform(), "processor": platform.machine(),
            "cpu_count": os.cpu_count(), "packages": packages}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
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
