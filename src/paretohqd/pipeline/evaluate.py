"""The evaluate and report units: score every model's held-out generations with raw rewards, the front and its
metrics (``eval/metrics.json``, ``per_preference.csv``, ``scores.parquet``); then the plot, the Markdown report and
the self-contained HTML report (the front, the selection, sample outputs side by side), whose settings change
nothing else.

Cost (``metrics["cost"]``), over the units the evaluation depends on, by what they do:

- ``scoring``: scoring of the offline data (kinds score_check, score_shard, score), on its own line and in no
  method's cost. A check or shard lives in a content-addressed cache that several runs may share; its seconds are
  read from the record the computing run left beside it (``<output>.cost.json``), so every run on the same data and
  objectives reports the same scoring cost (``key`` names that scoring), whichever computed it first. A shard with
  no record (a cache filled by an older version) counts 0 and is counted in ``unrecorded_units``. The merge is this
  run's own unit.
- ``training``: the method's own work other than generation (selection, SFT, scoring of generated text, ...).
- ``generation``: the method's own generation (stage-2 / online rounds' data).
- ``evaluation``: answering the held-out prompts and this evaluation (its scoring of the answers included): the same
  protocol for every method, so in no method's cost; ``inputs``: reading the data.
- ``method`` = training + generation: what the method costs on top of the shared scoring; ``total``: everything.

Each with wall seconds (every recorded attempt of a unit) and GPU-seconds (wall x the CUDA devices it held), and per
stage. ``wall_seconds`` / ``gpu_seconds``: the same per stage, scoring as attributed above, plus ``total``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..config import CollapseConfig, EvaluateConfig, from_dict
from ..evaluate.collapse import CollapseDetector
from ..evaluate.html import report_page
from ..evaluate.metrics import BASE, HV_RUN_WORST, summarise
from ..evaluate.report import write_report
from ..tracking import NO_TRACKING, Tracking, log_summary
from .rundir import COST_SIDECAR, MANIFEST, CudaUse, read_manifest
from .runner import closure as units_needed
from .score import score_generations
from .select import selection_views
from .units import Unit, UnitContext

METRICS = "eval/metrics.json"
METRICS_FORMAT = 3
"""In the evaluation's key: a new format of metrics.json (named hypervolumes, cost) re-evaluates older runs."""
SCORING_KINDS = frozenset({"score_check", "score_shard", "score"})
GENERATION_KINDS = frozenset({"generate"})
EVALUATION_KINDS = frozenset({"evaluate", "report"})
INPUT_KINDS = frozenset({"input"})
CATEGORIES = ("scoring", "training", "generation", "evaluation", "inputs")
HELDOUT_STAGE = "generate"
TRAINING_KINDS = frozenset({"sft", "dpo", "rloo"})
COUNTED_KINDS = TRAINING_KINDS | GENERATION_KINDS | {"score", "score_generated"}
"""The stage of the units that answer the held-out prompts (``pipeline.plan``)."""


def cost_category(kind: str, stage: str = "") -> str:
    """Which line of the cost a unit of ``kind`` in ``stage`` is counted on; anything a method declares itself is
    training. Answering the held-out prompts (stage ``HELDOUT_STAGE``) is evaluation, the same for every method,
    never the method's own generation."""
    if kind in SCORING_KINDS:
        return "scoring"
    if kind in GENERATION_KINDS:
        return "evaluation" if stage == HELDOUT_STAGE else "generation"
    if kind in EVALUATION_KINDS:
        return "evaluation"
    if kind in INPUT_KINDS:
        return "inputs"
    return "training"


def evaluation_units(method: str, models: list[dict], generations: list[Unit], evaluate: EvaluateConfig,
                     scoring: tuple[dict, dict], seed: int, closure: list[str],
                     report_inputs: Mapping[str, Unit] | None = None,
                     offline_scores: Unit | None = None, tracking: Tracking = NO_TRACKING) -> tuple[Unit, Unit]:
    """``models``: ``{"name", "weights"}`` in the order of ``generations``; ``closure``: the names of every unit
    the evaluation depends on, whose cost its metrics report; ``report_inputs``: the further units the report
    draws (``pipeline.plan.report_inputs``); ``offline_scores``: the scored offline data, which declare the
    default reference point and the fixed scales before any model is trained; ``tracking``: where the report
    unit logs the run's summary (front, hypervolumes, collapse rate, report)."""
    settings, options = scoring
    names = set(closure)
    cost_units = [{"name": u.name, "kind": u.kind, "stage": u.stage, "key": u.key,
                   "outputs": list(u.output_paths) if u.content_addressed else [],
                   **({"files": list(u.output_paths)} if u.kind in COUNTED_KINDS else {})}
                  for u in units_needed(generations) if u.name in names]
    unit = Unit(name="evaluate", kind="evaluate", stage="evaluate", command="evaluate", action=run_evaluation,
                outputs=(METRICS, "eval/per_preference.csv", "eval/scores.parquet"),
                upstream={**{f"model:{i:03d}": g for i, g in enumerate(generations)},
                          **({"offline_scores": offline_scores} if offline_scores is not None else {})},
                settings={**settings, "method": method, "models": models,
                          "collapse": dataclasses.asdict(evaluate.collapse),
                          "reference_point": evaluate.reference_point,
                          "reference_quantile": evaluate.reference_quantile if evaluate.reference_point is None
                          else None, "metrics_format": METRICS_FORMAT},
                options={**options, "closure": list(closure), "cost_units": cost_units,
                         "sampling": dataclasses.asdict(evaluate.sampling), "seed": seed})
    report = Unit(name="report", kind="report", stage="evaluate", command="evaluate", action=run_report,
                  outputs=("eval/front.png", "eval/report.md", "eval/report.html"),
                  upstream={"evaluation": unit, **(report_inputs or {})},
                  settings={"sample_outputs": evaluate.sample_outputs}, options={"tracking": tracking})
    return unit, report


def run_evaluation(ctx: UnitContext) -> None:
    started = time.perf_counter()
    s, o = ctx.settings, ctx.options
    with CudaUse() as cuda:  # the reward models may run on a GPU
        scored = score_generations(ctx, [(m["name"], ctx.input(f"model:{i:03d}"))
                                         for i, m in enumerate(s["models"])], "model")
    detector = CollapseDetector(from_dict(CollapseConfig, s["collapse"]))
    scored["degenerate"] = detector.is_degenerate(scored["response"].tolist())
    names = [entry["name"] for entry in s["objectives"]]
    reference, scales, rule = declared_frame(ctx, names)
    table, metrics = summarise(scored, s["models"], names, detector, reference, scales, bootstrap_seed=o["seed"])
    metrics["reference_point"] = {"raw": reference, "rule": rule}
    run_dir = ctx.outputs[0].parents[1]
    seconds = time.perf_counter() - started
    earlier = _earlier_attempts(run_dir / MANIFEST, ctx.name)  # failed or killed attempts count too
    itself = {"name": ctx.name, "kind": "evaluate", "stage": "evaluate",
              "wall_seconds": earlier["wall_seconds"] + seconds,
              "gpu_seconds": earlier["gpu_seconds"] + seconds * cuda.devices}
    cost, wall, gpu = cost_summary(run_dir, o.get("cost_units", [{"name": n} for n in o["closure"]]), [itself])
    cost["counts"] = work_counts(run_dir, o.get("cost_units", []))
    span = elapsed_span(run_dir / MANIFEST, o["closure"])
    metrics = {"method": s["method"], **metrics, "cost": cost, "wall_seconds": wall, "gpu_seconds": gpu,
               "elapsed_seconds": span + time.perf_counter() - started, "sampling": o["sampling"], "seed": o["seed"]}
    table_out = table.copy()
    table_out["weights"] = table_out["weights"].map(lambda w: "" if w is None else " ".join(f"{x:.3g}" for x in w))
    io.write_parquet(ctx.outputs[2], scored)
    with io.atomic_path(ctx.outputs[1]) as tmp:
        table_out.to_csv(tmp, index=False)
    io.write_json(ctx.outputs[0], metrics)
    ctx.log(f"evaluate: hypervolume {metrics[HV_RUN_WORST]:.4f} (min-max over this run's points, worst corner), "
            f"collapse rate {metrics['collapse_rate']:.2%}; cost {cost['method']['wall_seconds']:.0f} s training + "
            f"generation, {cost['scoring']['wall_seconds']:.0f} s scoring -> {ctx.outputs[0].parent}")


def _earlier_attempts(manifest: Path, name: str) -> dict:
    """The seconds the runner carried over into this attempt's entry from the attempts before it."""
    entry = read_manifest(manifest)["units"].get(name, {})
    return {key: float(entry.get(key, 0.0)) for key in ("wall_seconds", "gpu_seconds")}


def cost_summary(run_dir: Path, units: Sequence[dict], extra: Sequence[dict] = ()) -> tuple[dict, dict, dict]:
    """(``cost`` by category, wall seconds per stage, GPU-seconds per stage) over ``units`` (``{"name", "kind",
    "stage", "key", "outputs"}``: the units the evaluation depends on; ``outputs`` of content-addressed ones, whose
    cost records lie beside them) from the manifest and those records, plus ``extra`` units measured by the caller
    (``{"name", "kind", "stage", "wall_seconds", "gpu_seconds"}``: the evaluation itself). See the module's text."""
    manifest = Path(run_dir) / MANIFEST
    entries = read_manifest(manifest)["units"]
    cost = {c: {"wall_seconds": 0.0, "gpu_seconds": 0.0, "stages": {}} for c in CATEGORIES}
    scoring = cost["scoring"]
    scoring.update(units=0, recorded_units=0, unrecorded_units=0, computed_here=0, merge_wall_seconds=0.0, key=None)
    measured = []
    for unit in units:
        entry = entries.get(unit["name"]) or {}
        kind, stage = unit.get("kind") or entry.get("kind", ""), unit.get("stage") or entry.get("stage", "other")
        wall, gpu = entry.get("wall_seconds", 0.0), entry.get("gpu_seconds", 0.0)
        if unit.get("outputs"):  # content-addressed: a cache's unit, perhaps computed by another run
            record = _cost_record(Path(run_dir), unit["outputs"][0])
            scoring["recorded_units" if record or entry else "unrecorded_units"] += kind in SCORING_KINDS
            if record:
                wall, gpu = record.get("wall_seconds", 0.0), record.get("gpu_seconds", 0.0)
        if kind in SCORING_KINDS:
            scoring["units"] += 1
            scoring["computed_here"] += bool(entry) and "reused_from" not in entry
            if kind == "score":
                scoring["key"] = unit.get("key")
                scoring["merge_wall_seconds"] = wall
        measured.append((kind, stage, wall, gpu))
    measured += [(u["kind"], u["stage"], u["wall_seconds"], u["gpu_seconds"]) for u in extra]
    wall_by_stage: dict[str, float] = {}
    gpu_by_stage: dict[str, float] = {}
    for kind, stage, wall, gpu in measured:
        line = cost[cost_category(kind, stage)]
        line["wall_seconds"] += wall
        line["gpu_seconds"] += gpu
        by_stage = line["stages"].setdefault(stage, {"wall_seconds": 0.0, "gpu_seconds": 0.0})
        by_stage["wall_seconds"] += wall
        by_stage["gpu_seconds"] += gpu
        wall_by_stage[stage] = wall_by_stage.get(stage, 0.0) + wall
        gpu_by_stage[stage] = gpu_by_stage.get(stage, 0.0) + gpu
    cost["method"] = {k: cost["training"][k] + cost["generation"][k] for k in ("wall_seconds", "gpu_seconds")}
    cost["total"] = {k: sum(cost[c][k] for c in CATEGORIES) for k in ("wall_seconds", "gpu_seconds")}
    wall_by_stage["total"] = cost["total"]["wall_seconds"]
    gpu_by_stage["total"] = cost["total"]["gpu_seconds"]
    return cost, wall_by_stage, gpu_by_stage


def work_counts(run_dir: Path, units: Sequence[dict]) -> dict:
    """Counts of the work behind the cost that do not depend on the hardware: sequences and tokens trained (every
    process's, from each model's ``training.json``), replies and tokens the method generated, held-out replies and
    tokens, samples scored (the offline data; the method's generated samples)."""
    import pyarrow.parquet as pq

    counts = dict.fromkeys(("sequences_trained", "tokens_trained", "replies_generated", "tokens_generated",
                            "evaluation_replies", "evaluation_tokens", "samples_scored", "generated_samples_scored"), 0)
    for unit in units:
        files = [Path(f) if Path(f).is_absolute() else Path(run_dir) / f for f in unit.get("files", ())]
        kind = unit["kind"]
        try:
            if kind in TRAINING_KINDS:
                record = io.read_json(files[0] / "training.json")
                counts["sequences_trained"] += sum(int(r.get("sequences", 0)) for r in record.get("ranks", ()))
                logged = [e["num_tokens"] for e in record.get("log_history", ()) if "num_tokens" in e]
                counts["tokens_trained"] += int(max(logged, default=0))
            elif kind in GENERATION_KINDS:
                meta = io.read_json(files[1])
                held_out = unit["stage"] == HELDOUT_STAGE
                counts["evaluation_replies" if held_out else "replies_generated"] += int(meta["num_prompts"])
                counts["evaluation_tokens" if held_out else "tokens_generated"] += int(meta.get("tokens_generated", 0))
            elif kind in ("score", "score_generated"):
                rows = pq.read_metadata(files[0]).num_rows
                counts["samples_scored" if kind == "score" else "generated_samples_scored"] += int(rows)
        except (OSError, ValueError, KeyError, IndexError):
            continue  # a unit whose record is missing (an older version's) counts nothing
    return counts


def _cost_record(run_dir: Path, output: str) -> dict | None:
    path = Path(output) if Path(output).is_absolute() else run_dir / output
    record = path.with_name(path.name + COST_SIDECAR)
    try:
        return io.read_json(record)
    except (OSError, ValueError):
        return None


def elapsed_span(manifest: Path, names: list[str]) -> float:
    """Seconds from the first of the named units starting to the last finishing (the elapsed time: shorter than
    the summed cost when units ran at once, longer across a pause between a run and its resumption)."""
    units = read_manifest(manifest)["units"]
    began = [units[n]["started"] for n in names if n in units and "started" in units[n] and "finished" in units[n]]
    ended = [units[n]["finished"] for n in names if n in units and "started" in units[n] and "finished" in units[n]]
    return (max(ended) - min(began)) if began else 0.0


def declared_frame(ctx: UnitContext, names: list[str]) -> tuple[list[float] | None, list[float] | None, str]:
    """(reference point, per-objective scales, how the reference was declared): ``evaluate.reference_point``, or
    the ``reference_quantile`` quantile of the offline scores; the scales are the offline scores' standard
    deviations. Both come from what existed before any model was trained."""
    s = ctx.settings
    if "offline_scores" not in ctx.inputs:
        return s["reference_point"], None, "evaluate.reference_point" if s["reference_point"] else "none"
    offline = pd.read_parquet(ctx.input("offline_scores"), columns=names).to_numpy(dtype=np.float64)
    scales = [float(v) if v > 0 else 1.0 for v in offline.std(axis=0)]
    if s["reference_point"] is not None:
        return [float(v) for v in s["reference_point"]], scales, "evaluate.reference_point"
    quantile = s["reference_quantile"]
    return (np.quantile(offline, quantile, axis=0).tolist(), scales,
            f"the {quantile:g} quantile of each objective's offline scores (evaluate.reference_quantile)")


def run_report(ctx: UnitContext) -> None:
    metrics = io.read_json(ctx.input("evaluation", 0))
    names = metrics["objectives"]
    rows = [{"model": p["model"], "weights": p["weights"], **{f"mean_{n}": v for n, v in zip(names, p["mean_rewards"])}}
            for p in metrics["preferences"]]
    if metrics.get("base"):
        rows.append({"model": BASE, "weights": None,
                     **{f"mean_{n}": v for n, v in zip(names, metrics["base"]["mean_rewards"])}})
    scored = pd.read_parquet(ctx.input("evaluation", 2))
    write_report(ctx.output.parent, metrics, pd.DataFrame(rows), scored, ctx.settings["sample_outputs"])
    selections = selection_views({role: paths for role, paths in ctx.inputs.items() if role != "evaluation"}, names)
    io.write_text(ctx.outputs[2], report_page(metrics, scored, ctx.settings["sample_outputs"], selections))
    written = log_summary(ctx.options.get("tracking", NO_TRACKING), metrics,
                          ctx.outputs[1].read_text(encoding="utf-8"))
    if written:
        ctx.log(f"report: the front, hypervolumes, collapse rate and report logged to {', '.join(written)}")
