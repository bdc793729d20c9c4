"""The evaluate and report units: score every model's held-out generations with raw rewards, the front and its
metrics (``eval/metrics.json``, ``per_preference.csv``, ``scores.parquet``); then the plot and the Markdown report,
whose settings change nothing else."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pandas as pd

from .. import io
from ..config import CollapseConfig, EvaluateConfig, from_dict
from ..evaluate.collapse import CollapseDetector
from ..evaluate.metrics import BASE, summarise
from ..evaluate.report import write_report
from .rundir import MANIFEST
from .score import score_generations
from .units import Unit, UnitContext

METRICS = "eval/metrics.json"


def evaluation_units(method: str, models: list[dict], generations: list[Unit], evaluate: EvaluateConfig,
                     scoring: tuple[dict, dict], seed: int, closure: list[str]) -> tuple[Unit, Unit]:
    """``models``: ``{"name", "weights"}`` in the order of ``generations``; ``closure``: the names of every unit
    the evaluation depends on, whose wall seconds its metrics report."""
    settings, options = scoring
    unit = Unit(name="evaluate", kind="evaluate", stage="evaluate", command="evaluate", action=run_evaluation,
                outputs=(METRICS, "eval/per_preference.csv", "eval/scores.parquet"),
                upstream={f"model:{i:03d}": g for i, g in enumerate(generations)},
                settings={**settings, "method": method, "models": models,
                          "collapse": dataclasses.asdict(evaluate.collapse),
                          "reference_point": evaluate.reference_point},
                options={**options, "closure": closure, "sampling": dataclasses.asdict(evaluate.sampling),
                         "seed": seed})
    report = Unit(name="report", kind="report", stage="evaluate", command="evaluate", action=run_report,
                  outputs=("eval/front.png", "eval/report.md"), upstream={"evaluation": unit},
                  settings={"sample_outputs": evaluate.sample_outputs})
    return unit, report


def run_evaluation(ctx: UnitContext) -> None:
    started = time.perf_counter()
    s, o = ctx.settings, ctx.options
    scored = score_generations(ctx, [(m["name"], ctx.input(f"model:{i:03d}")) for i, m in enumerate(s["models"])],
                               "model")
    detector = CollapseDetector(from_dict(CollapseConfig, s["collapse"]))
    scored["degenerate"] = detector.is_degenerate(scored["response"].tolist())
    names = [entry["name"] for entry in s["objectives"]]
    table, metrics = summarise(scored, s["models"], names, detector, s["reference_point"])
    wall, span = stage_seconds(ctx.outputs[0].parents[1] / MANIFEST, o["closure"])
    wall["evaluate"] = wall.get("evaluate", 0.0) + time.perf_counter() - started
    wall["total"] = float(sum(wall.values()))
    metrics = {"method": s["method"], **metrics, "wall_seconds": wall,
               "elapsed_seconds": span + time.perf_counter() - started, "sampling": o["sampling"], "seed": o["seed"]}
    table_out = table.copy()
    table_out["weights"] = table_out["weights"].map(lambda w: "" if w is None else " ".join(f"{x:.3g}" for x in w))
    io.write_parquet(ctx.outputs[2], scored)
    with io.atomic_path(ctx.outputs[1]) as tmp:
        table_out.to_csv(tmp, index=False)
    io.write_json(ctx.outputs[0], metrics)
    ctx.log(f"evaluate: hypervolume {metrics['hypervolume']:.4f}, collapse rate {metrics['collapse_rate']:.2%} "
            f"-> {ctx.outputs[0].parent}")


def stage_seconds(manifest: Path, names: list[str]) -> tuple[dict[str, float], float]:
    """(wall seconds per stage summed over the named units, those the evaluation depends on: the cost, whatever
    ran at the same time; seconds from the first of them starting to the last finishing: the elapsed time, shorter
    when units ran at once), from the manifest."""
    units = io.read_json(manifest)["units"] if manifest.exists() else {}
    wall: dict[str, float] = {}
    began, ended = [], []
    for name in names:
        entry = units.get(name)
        if entry:
            wall[entry["stage"]] = wall.get(entry["stage"], 0.0) + entry.get("wall_seconds", 0.0)
            if "started" in entry and "finished" in entry:
                began.append(entry["started"])
                ended.append(entry["finished"])
    return wall, (max(ended) - min(began)) if began else 0.0


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
