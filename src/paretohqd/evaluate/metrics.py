"""The held-out front of one run from its scored generations: one point per model (its mean raw reward vector),
hypervolume with a recorded reference point and normalisation, collapse rate. Pure computations over frames."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..pareto import hypervolume, normalised_hypervolume
from ..tables import format_table, format_vector
from .collapse import CollapseDetector

BASE = "base"


def front_hypervolume(points: np.ndarray, base: np.ndarray | None, reference: list[float] | None = None) -> dict:
    """Hypervolume of the aligned models' points, METHOD.md's DEFAULT: each objective min-max normalised over the
    union of the compared points (here the aligned models and the base model), reference = the worst corner.
    Also the hypervolume with the base model's own point as the reference: the region the aligned front gains
    over the model it started from."""
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


def summarise(scored: pd.DataFrame, models: list[dict], names: list[str], detector: CollapseDetector,
              reference_point: list[float] | None = None) -> tuple[pd.DataFrame, dict]:
    """Per-model table and the front metrics. ``scored``: one row per (model, prompt) with a ``model`` column, a
    ``degenerate`` flag and one column per objective; ``models``: ``{"name", "weights" (or None)}``, the base
    model named ``base``."""
    rows = []
    for entry in models:
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
    metrics = {
        "objectives": names,
        "preferences": [{"model": r["model"], "weights": r["weights"],
                         "mean_rewards": [r[f"mean_{n}"] for n in names], "collapse_rate": r["collapse_rate"]}
                        for r in rows if r["model"] != BASE],
        "base": None if base is None else {"mean_rewards": base.tolist(),
                                           "collapse_rate": float(base_rows["collapse_rate"].iloc[0])},
        **front_hypervolume(points, base, reference_point),
        "collapse_rate": float(scored.loc[scored["model"] != BASE, "degenerate"].mean()),
        "collapse_detector": dataclasses.asdict(detector.thresholds),
        "num_test_prompts": int(scored["prompt_id"].nunique()),
    }
    return table, metrics


def weights_label(weights, digits: str = ".2f") -> str:
    return format_vector(weights, digits) if weights else "-"


def format_front_table(metrics: dict) -> str:
    names = metrics["objectives"]
    rows = [[p["model"], weights_label(p["weights"])] + [f"{v:.3f}" for v in p["mean_rewards"]]
            + [f"{p['collapse_rate']:.1%}"] for p in metrics["preferences"]]
    if metrics.get("base"):
        rows.append(["base", "-"] + [f"{v:.3f}" for v in metrics["base"]["mean_rewards"]]
                    + [f"{metrics['base']['collapse_rate']:.1%}"])
    return format_table(["model", "weights"] + names + ["collapse"], rows)
