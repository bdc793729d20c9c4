"""A run as a plan of declared units: the shared stages (inputs, scoring, held-out generation, evaluation) around
the training units a method declares, and which units each stage command targets."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..config import ExecutionConfig, RunConfig, dump_yaml
from ..errors import UserError
from ..locking import folder_lock_file, writer_lock
from ..pareto import resolve_grid, validate_preferences
from ..pareto.interpolation import cell_midpoints
from .distributed import distributed_executor, is_main_process
from .evaluate import HELDOUT_STAGE, evaluation_units
from .executors import make_executor
from .generate import generation_unit
from .inputs import SAMPLES, Inputs, check_objective_names, check_objectives_score_text, input_units
from .rundir import RunDir, check_writable_folder, run_identity, unit_tracking
from .runner import Execution, Runner, closure
from .score import score_units, scoring_settings
from .units import Unit

COMMANDS = ("score", "select", "train", "generate", "evaluate", "run")
HELDOUT_SEED_OFFSET = 2000


@dataclass
class Shared:
    """What every method builds on: the config, the inputs, the merged scores, the preference grid, and the
    objectives' scoring settings (what any unit that scores needs: ``pipeline.score.scoring_unit``)."""

    config: RunConfig
    inputs: Inputs
    scores: Unit
    weights: np.ndarray
    progress: bool
    scoring: tuple[dict, dict]


class MethodLike(Protocol):
    """What the pipeline asks of a method (``paretohqd.methods.base.Method`` defines it for users)."""

    name: str
    commands: tuple[str, ...]
    serve_modes: tuple[str, ...]

    def training_units(self, shared: Shared) -> list[Unit]: ...

    def evaluated_models(self, shared: Shared, training: list[Unit]) -> list[Any]: ...

    def served_model(self, shared: Shared, training: list[Unit], weights: np.ndarray, mode: str | None = None
                     ) -> Any: ...


@dataclass
class Plan:
    run: RunDir
    units: list[Unit]
    targets: dict[str, list[Unit]]
    stages: dict[str, list[str]]
    execution: ExecutionConfig = dataclasses.field(default_factory=ExecutionConfig)
    shared: Shared | None = None
    training: list[Unit] = dataclasses.field(default_factory=list)
    """The method's own units (what ``shared`` and the method make of the config: what serving a preference reads)."""

    def execute(self, command: str = "run", force: bool = False, log=print, executor=None,
                prepare=None, claim_shared=None) -> Execution:
        targets = self.targets[command]
        # Inside a multi-process launch every process runs this plan together; only rank 0 writes and speaks.
        executor = executor or distributed_executor(self.units, self.execution) \
            or make_executor(self.execution, log)
        main_process = getattr(executor, "main_process", True)
        runner = Runner(self.run, log=log if main_process else _quiet, executor=executor, main_process=main_process)
        execution = runner.execute(targets, force=[u.name for u in targets] if force else (),
                                   stages=self.stages[command], declared=self.units, prepare=prepare,
                                   claim_shared=claim_shared)
        if command == "run":
            runner.prune(self.units)
        return execution


def _quiet(message: str) -> None:
    """The log of the processes of a launch other than rank 0, which says it all once."""


def progress_enabled() -> bool:
    """Progress bars, unless PARETOHQD_PROGRESS=0 (tests, logs); ``score.progress`` turns off scoring's alone.
    Off, it turns off the libraries' bars too (transformers' weight loading, datasets' maps and filters), here and
    in the worker processes this one starts."""
    setting = os.environ.get("PARETOHQD_PROGRESS", "1").strip().lower()
    if setting not in ("0", "1", "true", "false", "yes", "no", "on", "off", ""):
        raise UserError(f"PARETOHQD_PROGRESS must be 1 or 0 (true/false), not {os.environ['PARETOHQD_PROGRESS']!r}")
    enabled = setting not in ("0", "false", "no", "off")
    if not enabled:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
        if "huggingface_hub" in sys.modules:
            sys.modules["huggingface_hub"].utils.disable_progress_bars()
        if "transformers" in sys.modules:
            sys.modules["transformers"].utils.logging.disable_progress_bar()
        if "datasets" in sys.modules:
            sys.modules["datasets"].disable_progress_bars()
    return enabled


def build_plan(method: MethodLike, config: RunConfig, command: str = "run", from_run_directory: bool = False) -> Plan:
    """Every unit ``command`` may need, checked before any work: data, objectives, preferences and, for commands
    that generate, the test prompts (held-out generation and evaluation are declared only for those).
    ``from_run_directory``: the training samples as the run directory holds them, when it does (serving a finished
    run needs nothing outside it)."""
    run = RunDir(config.output_dir)
    held_out = command in ("generate", "evaluate", "run")
    if command != "score" and command != "select":
        check_objectives_score_text(config.objectives)
    try:
        weights = resolve_grid(config.preferences.grid, len(config.objectives), config.preferences.n_points,
                               config.preferences.n_partitions, config.preferences.weights)
    except ValueError as exc:
        raise UserError(f"preferences: {exc}") from None
    kept = run.resolve(SAMPLES) if from_run_directory else None
    inputs = input_units(config.data, config.evaluate if held_out else None,
                         kept if kept is not None and kept.is_file() else None)
    check_objective_names(inputs.samples, config.objectives)
    progress = progress_enabled()
    scoring = scoring_settings(config.objectives, config.score)
    scores = score_units(scoring, config.score, inputs, progress and config.score.progress)
    shared = Shared(config, inputs, scores, weights, progress, scoring)
    training = method.training_units(shared)
    targets = {"score": [scores], "train": [u for u in training if u.command == "train"]}
    declared = [inputs.samples_unit, scores, *training]
    if held_out:
        generations, evaluate, report = _held_out_units(method, shared, training)
        targets.update(generate=generations, evaluate=[evaluate, report])
        declared += [inputs.prompts_unit, *generations, evaluate, report]
    units = _in_declaration_order(declared)
    targets["select"] = [u for u in units if u.command == "select"]
    if held_out:
        # Everything the run directory names is brought up to date; caches (score shards) only when needed.
        targets["run"] = [u for u in units if not u.content_addressed]
    stages = {command: list(dict.fromkeys(u.stage for u in closure(t))) for command, t in targets.items()}
    return Plan(run, units, targets, stages, config.execution, shared, training)


def _held_out_units(method: MethodLike, shared: Shared, training: list[Unit]) -> tuple[list[Unit], Unit, Unit]:
    """One generation unit per evaluated model (and the base model), the evaluation and the report."""
    config = shared.config
    evaluated = method.evaluated_models(shared, training)
    models = [{"name": m.name, "weights": m.weights,
               **({"earlier_stage_of": m.earlier_stage_of} if m.earlier_stage_of else {})} for m in evaluated]
    served = served_models(method, shared, training)
    models += [{"name": m.name, "weights": m.weights, "served": {"mode": mode, "from": m.made_from}}
               for m, mode in served]
    evaluated += [m for m, _ in served]
    heldout = dict(prompts=shared.inputs.prompts_unit, model=config.model, sampling=config.evaluate.sampling,
                   seed=config.seed + HELDOUT_SEED_OFFSET, progress=shared.progress, generation=config.generation)
    generations = [generation_unit(f"generate/{m.name}", HELDOUT_STAGE, "generate", f"generations/{m.name}.jsonl",
                                   adapters=m.adapters, mix=m.mix, condition=m.condition,
                                   condition_settings=m.condition_settings, inputs=m.inputs, **heldout)
                   for m in evaluated]
    if config.evaluate.include_base:
        models.append({"name": "base", "weights": None})
        generations.append(generation_unit("generate/base", HELDOUT_STAGE, "generate", "generations/base.jsonl",
                                           **heldout))
    evaluate, report = evaluation_units(method.name, models, generations, config.evaluate,
                                        shared.scoring, config.seed,
                                        [u.name for u in closure(generations)],
                                        report_inputs=report_inputs(shared, training),
                                        offline_scores=shared.scores,
                                        tracking=unit_tracking(config.report_to, config.output_dir))
    return generations, evaluate, report


def served_models(method: MethodLike, shared: Shared, training: list[Unit]) -> list[tuple[Any, str]]:
    """(model named ``served_NN``, the mode it was served with) for each of ``evaluate.served``'s preferences."""
    evaluate = shared.config.evaluate
    if evaluate.served is None:
        return []
    try:
        wanted = cell_midpoints(shared.weights) if evaluate.served == "midpoints" \
            else validate_preferences(evaluate.served, len(shared.config.objectives))
    except ValueError as exc:
        raise UserError(f"evaluate.served: {exc}") from None
    mode = evaluate.served_mode if method.serve_modes else None
    out = []
    for i, weights in enumerate(wanted):
        model = method.served_model(shared, training, weights, mode)
        out.append((dataclasses.replace(model, name=f"served_{i:02d}", weights=[float(x) for x in weights]),
                    mode or "own rule"))
    return out


def report_inputs(shared: Shared, training: list[Unit]) -> dict[str, Unit]:
    """What the report draws besides the evaluation: the scored offline data (``scores``) and, for a method that
    selects (ParetoHqD), each selection stage's pool and per-preference choices (``<summary name>:<role>``, e.g.
    ``select/summary:pool``, ``select/summary:pref:03``, ``stage2/select/summary:scores``)."""
    inputs: dict[str, Unit] = {"scores": shared.scores}
    for unit in training:
        if unit.kind == "select_summary":
            inputs.update({f"{unit.name}:{role}": upstream for role, upstream in unit.upstream.items()})
    return inputs


def _in_declaration_order(units: list[Unit]) -> list[Unit]:
    """Every unit the listed ones need, each after its dependencies, otherwise in the order listed."""
    ordered: dict[int, Unit] = {}

    def visit(unit: Unit) -> None:
        if id(unit) in ordered:
            return
        for dependency in unit.dependencies:
            visit(dependency)
        ordered[id(unit)] = unit

    for unit in units:
        visit(unit)
    return list(ordered.values())


def execute(method: MethodLike, config: RunConfig, command: str = "run", force: bool = False, log=print,
            overwrite: bool = False, wait: bool = False) -> Execution:
    """Plan the run, write its resolved config, and execute what ``command`` targets, as the run directory's one
    writer (``wait``: wait for another writer to finish instead of refusing). A folder that holds another run
    (:func:`~.rundir.run_identity`) is refused before any work; ``overwrite`` clears it first."""
    if command not in method.commands:
        raise UserError(f"'{command}' is not a stage of method '{config.method}' (its stages: "
                        f"{', '.join(method.commands)})")
    run = RunDir(config.output_dir)
    run.check_writable()
    if config.score.cache_dir:
        check_writable_folder(config.score.cache_dir, "score.cache_dir")
    # In a launch of several processes rank 0 speaks for the run directory: if it refuses, the launcher stops the
    # others (a relaunch with --accelerate_config took the lock, and cleared, before the processes started).
    main = is_main_process()
    with contextlib.ExitStack() as held:
        if main:
            held.enter_context(run.claimed(overwrite, wait, log))
        plan = build_plan(method, config, command)
        if main:
            run.check_same_run(plan_identity(plan))

        def prepare(order: list[Unit]) -> None:
            if main:
                if any(unit.content_addressed for unit in order) and not wait:
                    # Refused now, before any work, when another run is writing the cache (the lock itself is held
                    # only while this run's score units run: a run waits for another's scoring, not its training).
                    with score_cache_claimed(config, wait, log):
                        pass
                plan.run.init(dump_yaml(config))

        def claim_shared():
            return score_cache_claimed(config, wait, log)

        return plan.execute(command, force=force, log=log, prepare=prepare, claim_shared=claim_shared if main else None)


def plan_identity(plan: Plan) -> dict:
    config = plan.shared.config
    return run_identity(config.method, [o.name for o in config.objectives], config.data.source,
                        plan.shared.inputs.samples_unit.key, config.model.name_or_path, config.model.revision)


def score_cache_claimed(config: RunConfig, wait: bool, log):
    """The shared score cache's lock, held while this run's score units run (a cache inside the run directory is the
    run's own)."""
    cache = config.score.cache_dir
    if not cache or os.path.abspath(cache).startswith(os.path.abspath(config.output_dir) + os.sep):
        return contextlib.nullcontext()
    return writer_lock(folder_lock_file(cache), f"score.cache_dir '{cache}'", wait=wait, log=log,
                       advice=", or give this run another score.cache_dir")
