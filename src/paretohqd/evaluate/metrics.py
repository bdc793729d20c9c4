"""The evaluate stage: score every model's held-out generations with raw rewards, one point per model (its mean
reward vector), hypervolume with a recorded reference point and normalisation, collapse rate, plot and report."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd

from .. import io
from ..config import RunConfig

BASE = "base"


def front_hypervolume(points: np.ndarray, base: np.ndarray | None, reference: list[float] | None = None) -> dict:
    """Hypervolume of the aligned models' points, METHOD.md's DEFAULT: each objective min-max normalised over the
    union of the compared points (here the aligned models and the base model), reference = the worst corner.
    Also the hypervolume with the base model's own point as the reference: the region the aligned front gains
    over the model it started from."""
    from ..pareto import hypervolume, normalised_hypervolume

    sets = {"aligned": points}
    if base is not None:
        sets[BASE] = base[None, :]
    result = normalised_hypervolume(sets, reference=reference)
    out = {"hypervolume": result["hypervolume"]["aligned"], "reference_point": result["reference_point"],
           "normalisation": result["normalisation"]}
    if base is not None:
        out["base_hypervolume"] = result["hypervolume"][BASE]
        low = np.asarray(result["normalisation"]["low"], dtype=float)
        high = np.asarray(result["normalisation"]["high"], dtype=float)
        span = np.where(high > low, high - low, 1.0)
        out["hypervolume_vs_base"] = hypervolume((points - low) / span, (base - low) / span, maximise=True)
    return out


def run_evaluate(config: RunConfig, run, entries: list[dict], method: str, wall_seconds: dict,
                 log=print) -> dict:
    """``entries``: one per evaluated model, ``{"name", "weights" (or None), "file"}``; ``base`` is the reference."""
    from ..methods.stages import read_generations
    from ..rewards import build_objectives
    from ..rewards.scoring import score_samples

    started = time.perf_counter()
    names = config.objective_names
    frames = []
    for entry in entries:
        frame = read_generations(entry["file"])
        frame["model"] = entry["name"]
        frames.append(frame)
    generations = pd.concat(frames, ignore_index=True)
    generations["id"] = generations["model"] + ":" + generations["prompt_id"].astype(str)
    objectives = build_objectives(config.objectives)
    scored, _ = score_samples(generations, objectives, [c.batch_size for c in config.objectives],
                              run.path / "eval" / "cache", config.score.shard_size, config.score.sort_by_length,
                              consistency_check=0, show_progress=False)
    collapse = config.evaluate.collapse
    scored["degenerate"] = collapse.is_degenerate(scored["response"].tolist())
    io.write_parquet(run.path / "eval" / "scores.parquet", scored)

    rows = []
    for entry in entries:
        part = scored[scored["model"] == entry["name"]]
        row = {"model": entry["name"],
               "weights": None if entry.get("weights") is None else [float(w) for w in entry["weights"]]}
        for name in names:
            row[f"mean_{name}"] = float(part[name].mean())
            row[f"std_{name}"] = float(part[name].std(ddof=0))
        row["collapse_rate"] = float(part["degenerate"].mean())
        row["mean_words"] = float(part["response"].str.split().str.len().mean())
        rows.append(row)
    table = pd.DataFrame(rows)
    aligned = table[table["model"] != BASE]
    points = aligned[[f"mean_{n}" for n in names]].to_numpy(dtype=np.float64)
    base_rows = table[table["model"] == BASE]
    base = base_rows[[f"mean_{n}" for n in names]].to_numpy(dtype=np.float64)[0] if len(base_rows) else None
    hv = front_hypervolume(points, base, config.evaluate.reference_point)
    aligned_scores = scored[scored["model"] != BASE]
    wall = dict(wall_seconds)
    wall["evaluate"] = time.perf_counter() - started + wall.get("evaluate", 0.0)
    wall["total"] = float(sum(v for k, v in wall.items() if k != "total"))
    metrics = {
        "method": method,
        "objectives": names,
        "preferences": [{"model": r["model"], "weights": r["weights"],
                         "mean_rewards": [r[f"mean_{n}"] for n in names], "collapse_rate": r["collapse_rate"]}
                        for r in rows if r["model"] != BASE],
        "base": None if base is None else {"mean_rewards": base.tolist(),
                                           "collapse_rate": float(base_rows["collapse_rate"].iloc[0])},
        **hv,
        "collapse_rate": float(aligned_scores["degenerate"].mean()),
        "collapse_detector": dataclasses.asdict(collapse),
        "wall_seconds": wall,
        "num_test_prompts": int(generations["prompt_id"].nunique()),
        "sampling": config.evaluate.sampling.__dict__,
        "seed": config.seed,
    }
    table_out = table.copy()
    table_out["weights"] = table_out["weights"].map(lambda w: "" if w is None else " ".join(f"{x:.3g}" for x in w))
    with io.atomic_path(run.path / "eval" / "per_preference.csv") as tmp:
        table_out.to_csv(tmp, index=False)
    from .report import plot_front, write_report

    plot_front(table, names, run.path / "eval" / "front.png", title=f"{method}: held-out front")
    write_report(run, metrics, table, scored, config.evaluate.sample_outputs)
    io.write_json(run.path / "eval" / "metrics.json", metrics)
    log(f"evaluate: hypervolume {metrics['hypervolume']:.4f}, collapse rate {metrics['collapse_rate']:.2%} "
        f"-> {run.path / 'eval'}")
    return metrics


def format_front_table(metrics: dict) -> str:
    names = metrics["objectives"]
    header = ["model", "weights"] + names + ["collapse"]
    rows = [[p["model"], "(" + ", ".join(f"{w:.2f}" for w in p["weights"]) + ")" if p["weights"] else "-"]
            + [f"{v:.3f}" for v in p["mean_rewards"]] + [f"{p['collapse_rate']:.1%}"]
            for p in metrics["preferences"]]
    if metrics.get("base"):
        rows.append(["base", "-"] + [f"{v:.3f}" for v in metrics["base"]["mean_rewards"]]
                    + [f"{metrics['base']['collapse_rate']:.1%}"])
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
