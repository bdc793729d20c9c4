"""The run directory, the contract between units: the resolved config, the environment, the manifest, and every
unit's outputs. The manifest records, per unit, its key, status, outputs, wall seconds (every recorded attempt),
attempts, the CUDA devices it used and its GPU-seconds, and per stage the sums.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .. import io
from ..env import environment
from ..errors import UserError, first_line
from ..locking import LOCK_NAME, folder_lock_file, held_by_launcher, writer_lock
from ..tracking import SUMMARY_NAME, Tracking

MANIFEST = "manifest.json"
RESOLVED_CONFIG = "config.resolved.yaml"
SAMPLES_UNIT = "inputs/samples"
COST_SIDECAR = ".cost.json"
"""Suffix of the record beside a content-addressed unit's first output (a cached score shard): its wall seconds,
GPU-seconds and CUDA devices, written by the run that computed it and read by every run that finds it cached."""
EVAL_SCORES = "eval/scores.parquet"
LOGS = "logs"
"""Each unit's log lines (``logs/<unit name, / as .>.log``) and the trackers' local folders (``logs/tensorboard``):
written as they happen, read by no unit, in no key."""
TENSORBOARD = f"{LOGS}/tensorboard"


def unit_log_file(run_path: Path, unit_name: str) -> Path:
    """Where a unit's log lines are appended."""
    return Path(run_path) / LOGS / f"{unit_name.replace('/', '.')}.log"


def tracker_group(output_dir: str | Path) -> str:
    """What groups one run's units in a tracker (W&B's group): the run directory's name and a digest of its
    absolute path, so that two runs named alike in different places stay apart and a resumed run stays together."""
    path = Path(output_dir).expanduser().resolve()
    return f"{path.name}-{io.digest(str(path), 8)}"


def unit_tracking(report_to: str, output_dir: str | Path, unit_name: str = SUMMARY_NAME) -> Tracking:
    """Where a unit reports: its run's group, under its own name, into its TensorBoard folder
    (``logs/tensorboard/<unit name>``); the default name is the run's summary (the report unit's)."""
    return Tracking(report_to, tracker_group(output_dir), unit_name,
                    str(Path(output_dir).expanduser().resolve() / TENSORBOARD / unit_name))


def _cuda_allocations() -> list[int]:
    """Per CUDA device, how many allocations this process has made on it so far (empty: CUDA not in use here).
    Never initialises CUDA."""
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    try:
        if not torch.cuda.is_initialized():
            return []
        return [int(torch.cuda.memory_stats(device).get("allocation.all.allocated", 0))
                for device in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - a broken driver is no reason to lose a finished unit's record
        return []


class CudaUse:
    """The CUDA devices a block of work allocated memory on (``devices`` after the ``with`` block): a unit that
    ran on a GPU did (weights, activations, a vLLM cache); one that did not, in a process where an earlier unit or
    ``env.json`` started CUDA, did not. Never initialises CUDA."""

    def __init__(self) -> None:
        self.devices = 0
        self._before: list[int] = []

    def __enter__(self) -> CudaUse:
        self._before = _cuda_allocations()
        return self

    def __exit__(self, *exc) -> None:
        after = _cuda_allocations()
        before = self._before + [0] * (len(after) - len(self._before))
        self.devices = sum(1 for now, then in zip(after, before) if now > then)


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def check_writable(self) -> None:
        """Fail in one sentence, before any work, when the run directory cannot be written: it is a file, it lies
        under a file, or the file system refuses a new file in it (read-only, no permission, full)."""
        check_writable_folder(self.path, "output_dir")

    def init(self, config_yaml: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        io.write_text(self.path / RESOLVED_CONFIG, config_yaml)
        io.write_json(self.path / "env.json", environment())

    def resolve(self, path: str) -> Path:
        return Path(path) if Path(path).is_absolute() else self.path / path

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def manifest(self) -> dict:
        return read_manifest(self.manifest_path)

    def write_manifest(self, manifest: dict) -> None:
        manifest["stages"] = stage_summary(manifest["units"])
        manifest["updated"] = time.time()
        io.write_json(self.manifest_path, manifest)

    @contextlib.contextmanager
    def claimed(self, overwrite: bool = False, wait: bool = False,
                log: Callable[[str], None] | None = None) -> Iterator[None]:
        """This process as the run directory's one writer for the ``with`` block (see :mod:`paretohqd.locking`);
        a folder that holds files but no run is refused; with ``overwrite`` a run it holds is cleared first."""
        what = f"output_dir '{self.path}'"
        if held_by_launcher(folder_lock_file(self.path)):
            yield  # the command that launched this process holds the lock, and has checked and cleared the folder
            return
        with writer_lock(folder_lock_file(self.path), what, wait=wait, log=log,
                         advice=", or choose another output_dir"):
            stray = foreign_files(self.path)
            if stray:
                raise UserError(f"{what} holds files that are not a paretohqd run (such as '{stray[0]}')"
                                f"{': --overwrite clears only a run' if overwrite else ''}: choose a new or empty "
                                "folder")
            if overwrite and is_run_directory(self.path):
                clear_run(self.path)
                if log is not None:
                    log(f"{what}: cleared (--overwrite)")
            yield

    def check_same_run(self, identity: dict) -> None:
        """Refuse, in one sentence, a run directory that holds another run than ``identity`` describes
        (:func:`run_identity`); a new or empty folder, or the same run, passes."""
        previous = recorded_identity(self.path)
        if previous is None:
            return
        differences = identity_differences(previous, identity)
        if differences:
            raise UserError(f"output_dir '{self.path}' holds another run ({'; '.join(differences)}): choose another "
                            "output_dir, or pass --overwrite to clear it first")


def is_run_directory(path: str | Path) -> bool:
    return (Path(path) / RESOLVED_CONFIG).is_file()


def inside_run_directory(path: str | Path) -> Path | None:
    """The run directory that ``path`` (a file or folder, existing or not) lies in, itself included; else None."""
    path = Path(os.path.abspath(path))
    for folder in [path, *path.parents]:
        if is_run_directory(folder):
            return folder
    return None


def foreign_files(folder: Path) -> list[str]:
    """What a folder holds that says it is not a run directory: any entry, unless it holds a run (its resolved
    config) or only this package's lock file."""
    if not folder.is_dir() or is_run_directory(folder):
        return []
    return sorted(entry.name for entry in folder.iterdir() if entry.name != LOCK_NAME)


def clear_run(folder: Path) -> None:
    """Delete everything a run directory holds but its lock file (held by the caller): ``--overwrite``. The
    resolved config goes last, so that an interrupted clearing still leaves a folder recognised as a run."""
    for entry in sorted(folder.iterdir(), key=lambda e: e.name == RESOLVED_CONFIG):
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def run_identity(method: str, objectives: list[str], data_source, samples_key: str, model: str,
                 model_revision: str | None) -> dict:
    """What makes a run the run it is, as opposed to a setting changed within it (which the unit keys rerun): its
    method, its objectives (the space its front lives in), its policy model, and its data, which stays the same
    data when either its source or its content (the training samples' key) stays the same: a row edited in place
    is the same data, and so is the same file at another path."""
    return {"method": method, "objectives": list(objectives), "model": model, "model_revision": model_revision,
            "data_source": data_source, "samples_key": samples_key}


def recorded_identity(path: Path) -> dict | None:
    """The identity of the run a folder holds, from its resolved config and manifest; None for a new folder."""
    import yaml

    config_path = Path(path) / RESOLVED_CONFIG
    if not config_path.is_file():
        return None
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        config = None
    if not isinstance(config, dict):
        raise UserError(f"output_dir '{path}' holds a damaged {RESOLVED_CONFIG}, so whose run it holds is unknown: "
                        "choose another output_dir, or pass --overwrite to clear it first")
    try:
        samples_key = RunDir(path).manifest()["units"][SAMPLES_UNIT]["key"]
    except (OSError, ValueError, KeyError, TypeError):  # not recorded yet, or a damaged manifest: no content to
        samples_key = None                             # compare, so other data is told by its source alone
    data, model = config.get("data") or {}, config.get("model") or {}
    return run_identity(config.get("method", "paretohqd"),
                        [o.get("name") for o in config.get("objectives") or [] if isinstance(o, dict)],
                        data.get("source"), samples_key, model.get("name_or_path"), model.get("revision"))


def identity_differences(previous: dict, current: dict) -> list[str]:
    """How the run ``previous`` describes differs from ``current``, one phrase per difference."""
    differences = []
    if previous["method"] != current["method"]:
        differences.append(f"method {previous['method']}, not {current['method']}")
    if previous["objectives"] != current["objectives"]:
        differences.append(f"objectives {', '.join(map(str, previous['objectives']))}, not "
                           f"{', '.join(current['objectives'])}")
    if (previous["model"], previous["model_revision"]) != (current["model"], current["model_revision"]):
        differences.append(f"model {previous['model']}, not {current['model']}" if previous["model"] !=
                           current["model"] else f"model revision {previous['model_revision']}, not "
                                                 f"{current['model_revision']}")
    if previous["data_source"] != current["data_source"] and previous["samples_key"] != current["samples_key"]:
        differences.append(f"data {previous['data_source']}, not {current['data_source']}, and other samples")
    return differences


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


def rerun_advice(run_dir: str | Path, command: str) -> str:
    """The command that finishes ``command``'s stage of the run in ``run_dir`` itself: its own resolved config, with
    ``--output_dir`` the folder it is in now (a copied or moved run's config still names the original folder)."""
    return f"paretohqd {command} {Path(run_dir) / RESOLVED_CONFIG} --output_dir {run_dir}"


def read_state(path: Path, remedy: str):
    """A run-state file a command reads back (JSON or Parquet), or one sentence naming the damaged file and
    ``remedy``: what to do about it."""
    try:
        if path.suffix == ".parquet":
            import pandas as pd

            return pd.read_parquet(path)
        return io.read_json(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 (json, UTF-8 and Arrow each fail their own way on a damaged file)
        raise UserError(f"{path} is damaged ({first_line(exc)[:120]}): {remedy}") from None


def read_manifest(path: Path) -> dict:
    """The run's record of its units (empty for a new run); a damaged one is one sentence, never a guess: which
    units finished cannot be rebuilt exactly without it."""
    if not path.exists():
        return {"units": {}, "stages": {}}
    remedy = ("it records which units finished and under which keys: restore it from a copy of the run, or delete "
              "it and every unit runs again (scores in a shared score.cache_dir are reused)")
    manifest = read_state(path, remedy)
    units = manifest.get("units", {}) if isinstance(manifest, dict) else None
    if not isinstance(units, dict) or not all(isinstance(entry, dict) for entry in units.values()):
        raise UserError(f"{path} is damaged (not a mapping of units to their records): {remedy}")
    manifest["units"] = units
    return manifest


def read_metrics(run_dir: str | Path) -> dict:
    """A finished run's ``eval/metrics.json``, with its run directory."""
    path = Path(run_dir) / "eval" / "metrics.json"
    if not path.is_file():
        raise UserError(f"{run_dir} has no eval/metrics.json: finish that run first ({rerun_advice(run_dir, 'run')})")
    metrics = read_state(path, f"rebuild it from the run's generations: {rerun_advice(run_dir, 'evaluate')}")
    if not isinstance(metrics, dict) or "preferences" not in metrics:
        raise UserError(f"{path} is damaged (it is not a run's metrics): rebuild it from the run's generations: "
                        f"{rerun_advice(run_dir, 'evaluate')}")
    metrics["run_dir"] = str(run_dir)
    return metrics


def read_eval_scores(run_dir: str | Path):
    """A finished run's per-(model, prompt) scores, ``eval/scores.parquet``."""
    path = Path(run_dir) / EVAL_SCORES
    advice = rerun_advice(run_dir, "evaluate")
    if not path.is_file():
        raise UserError(f"{path} is missing (a run evaluated by an older version of paretohqd, or whose evaluation "
                        f"did not finish): {advice}")
    return read_state(path, f"rebuild it from the run's generations: {advice}")
