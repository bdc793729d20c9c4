"""Serving a finished run: which trained models answer for a preference, and how its prompts are conditioned.

The run is planned again from its ``config.resolved.yaml`` (so the models found are exactly the ones its config
trains, by key) and its method names the model for the preference (``Method.served_model``). Every model it needs
must be finished in the run directory; nothing is trained or written here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig, load_config
from ..errors import UserError
from ..locking import output_lock_file, writer_lock
from ..pareto import validate_preferences
from .inputs import objectives_score_text
from .plan import build_plan
from .rundir import RESOLVED_CONFIG, inside_run_directory, is_run_directory, rerun_advice
from .runner import Runner


@dataclass
class ServedModel:
    """What answers for one preference of a finished run: the trained model folders (one, or several with
    ``mix``), how prompts are rewritten before the model sees them, and where it came from."""

    config: RunConfig
    method: str
    weights: list[float]
    mode: str | None
    model_folders: list[Path]
    mix: list[float] | None
    made_from: list[dict]
    condition: Callable | None = None
    condition_inputs: dict[str, list[Path]] = field(default_factory=dict)
    name: str = ""
    """The trained model's name in the run (``pref_03``) when one of its trained models answers alone."""

    def conditioned(self, prompts: list[str]) -> list[str]:
        """The prompts as the model sees them (RiC: its target rewards written in)."""
        return list(prompts) if self.condition is None else self.condition(list(prompts), self.condition_inputs)

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "weights": self.weights, "mode": self.mode, "model": self.name or None,
                "models": [str(p) for p in self.model_folders], "mix": self.mix, "made_from": self.made_from}


def run_config(run_dir: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """A finished run's resolved config, its ``output_dir`` the directory it is read from (a moved run still
    serves)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory '{run_dir}' does not exist" if not run_dir.exists()
                        else f"'{run_dir}' is a file, not a run directory")
    if not is_run_directory(run_dir):
        raise UserError(f"'{run_dir}' is not a run directory: it has no {RESOLVED_CONFIG} (run `paretohqd run "
                        "CONFIG` first)")
    try:
        return load_config(str(run_dir / RESOLVED_CONFIG), ["--output_dir", str(run_dir), *(overrides or [])])
    except UserError as exc:
        if str(RESOLVED_CONFIG) in str(exc):
            raise
        raise UserError(f"{run_dir / RESOLVED_CONFIG}: {exc} (a run written by another version of paretohqd?)"
                        ) from None


def served_model(method, config: RunConfig, weights, mode: str | None = None) -> ServedModel:
    """The model of the finished run ``config`` describes (``run_config``) that answers for ``weights`` (any
    preference; ``mode`` for methods with one model per preference: ``nearest`` or ``interpolate``)."""
    run_dir = config.output_dir
    preference = check_serving_weights(weights, len(config.objectives))
    if not objectives_score_text(config.objectives):
        raise UserError(f"run '{run_dir}' has no trained models to serve: its objectives read stored columns, so it "
                        "only scores and selects (train on objectives that score text)")
    plan = build_plan(method, config, "train", from_run_directory=True)
    model = method.served_model(plan.shared, plan.training, preference, mode)
    runner = Runner(plan.run)
    missing = [unit for unit in [*model.adapters, *model.inputs.values()] if not runner.is_done(unit)]
    if missing:
        shown = ", ".join(f"{x:.4g}" for x in preference)
        raise UserError(f"run '{run_dir}' has not finished {missing[0].name} (the {config.method} model for "
                        f"preference ({shown}) needs it): run `{rerun_advice(run_dir, 'train')}` first")
    folders = [plan.run.resolve(unit.output_paths[0]) for unit in model.adapters]
    inputs = {role: [plan.run.resolve(p) for p in unit.output_paths] for role, unit in model.inputs.items()}
    return ServedModel(config, config.method, [float(x) for x in preference],
                       mode or (method.serve_modes[0] if method.serve_modes else None), folders, model.mix,
                       model.made_from, model.condition, inputs, model.name)


@contextlib.contextmanager
def claimed_output_file(path: str | Path, overwrite: bool = False, wait: bool = False,
                        option: str = "--output") -> Iterator[None]:
    """Hold the file a serving command writes (one writer at a time, see :mod:`paretohqd.locking`) for the ``with``
    block. Never a path inside a run directory (a run's own files are its units') or a folder; an existing file
    only with ``overwrite`` (checked once the lock is held)."""
    run = inside_run_directory(path)
    if run is not None:  # before the lock, whose file is written beside the output
        raise UserError(f"{option} '{path}' lies inside the run directory '{run}', whose files are the run's own: "
                        "write it elsewhere")
    if Path(path).is_dir() or str(path).endswith(("/", os.sep)):
        raise UserError(f"{option} '{path}' is a folder: give a file name")
    parent = Path(path).parent
    if parent.exists() and not parent.is_dir():
        raise UserError(f"{option} '{path}': '{parent}' is a file, so nothing can be written under it")
    with writer_lock(output_lock_file(path), f"{option} '{path}'", wait=wait):
        if Path(path).exists() and not overwrite:
            raise UserError(f"{option} '{path}' exists: choose a new file, or pass --overwrite to replace it")
        yield


def check_serving_weights(weights, num_objectives: int):
    """A preference to serve, normalised to sum to 1: one sentence on a wrong length, a negative, non-finite or
    all-zero weight."""
    values = list(weights)
    try:
        return validate_preferences([values], num_objectives)[0]
    except ValueError as exc:
        shown = ", ".join(str(v) for v in values)
        raise UserError(f"weights ({shown}): {str(exc).replace('preference 0 ', 'the preference ')}") from None
