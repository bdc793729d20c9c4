"""The held-out front of one run from its scored generations: one point per model (its mean raw reward vector),
hypervolume with a recorded reference point and normalisation, collapse rate. Pure computations over frames."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..pareto.indicators import HypervolumeFrame, minmax_frame, raw_frame
from ..tables import format_table, format_vector
from .collapse import CollapseDetector

BASE = "base"

# Every hypervolume number is named by its normalisation and reference point: numbers under one name are measured
# the same way. ``minmax_run``: min-max over one run's points (its aligned models and its base model), so not
# comparable across runs; ``minmax_union``: over the union of every compared run's points (``paretohqd compare``);
# ``raw``: raw reward units. ``worst``: the worst corner of the points normalised over; ``base``: the base model's
# point; ``ref``: a given raw reference point (``evaluate.reference_point``, ``compare --reference_point``): the
# only numbers comparable between runs evaluated apart, when they use the same reference point.
HV_RUN_WORST = "hypervolume_minmax_run_worst"
HV_RUN_BASE = "hypervolume_minmax_run_base"
HV_RUN_WORST_SERVED = "hypervolume_minmax_run_worst_with_served"
BASE_HV_RUN_WORST = "base_hypervolume_minmax_run_worst"
HV_RAW_REF = "hypervolume_raw_ref"
HV_UNION_WORST = "hypervolume_minmax_union_worst"
RUN_SCOPE = "this run's aligned models' and base model's points (mean raw reward vectors)"
UNION_SCOPE = "the union of every compared run's aligned models' points (mean raw reward vectors)"


def definition(frame: HypervolumeFrame, over: str | None) -> dict:
    """What to record with a hypervolume number: normalisation (with the points it was fitted ``over``) and
    reference point."""
    record = frame.to_dict()
    if over is not None:
        record["normalisation"]["over"] = over
    return record


def comparison_frame(union: np.ndarray, reference: list[float] | None = None) -> tuple[str, HypervolumeFrame]:
    """(field name, frame) of the hypervolume that compares several fronts: min-max over their union with the
    worst corner as reference, or raw units above a given reference point."""
    if reference is None:
        return HV_UNION_WORST, minmax_frame(union)
    return HV_RAW_REF, raw_frame(reference, union.shape[1])


def run_frame(points: np.ndarray, base: np.ndarray | None) -> HypervolumeFrame:
    """One run's hypervolume frame: min-max over its aligned and base points, reference their worst corner."""
    return minmax_frame(points if base is None else np.vstack([points, base[None, :]]))


def front_hypervolume(points: np.ndarray, base: np.ndarray | None, reference: list[float] | None = None) -> dict:
    """Hypervolumes of one run's aligned models' points: ``hypervolume_minmax_run_worst`` (METHOD.md's DEFAULT
    with this run's aligned and base points as the union: min-max over them, reference = their worst corner); with
    a base model also its own point's volume on that frame (``base_hypervolume_minmax_run_worst``) and the aligned
    front's volume with the base point as reference (``hypervolume_minmax_run_base``: the region gained over the
    model it started from); with a raw ``reference`` point ``hypervolume_raw_ref`` (raw units). Each name's
    normalisation and reference point are in ``hypervolume_definitions``."""
    frame = run_frame(points, base)
    out: dict = {HV_RUN_WORST: frame.hypervolume(points)}
    definitions = {HV_RUN_WORST: definition(frame, RUN_SCOPE)}
    if base is not None:
        out[BASE_HV_RUN_WORST] = frame.hypervolume(base[None, :])
        definitions[BASE_HV_RUN_WORST] = definitions[HV_RUN_WORST]
        on_base = dataclasses.replace(frame, reference_raw=np.asarray(base, dtype=float),
                                      reference=frame.transform(base[None, :])[0],
                                      reference_rule="the base model's point")
        out[HV_RUN_BASE] = on_base.hypervolume(points)
        definitions[HV_RUN_BASE] = definition(on_base, RUN_SCOPE)
    if reference is not None:
        raw = raw_frame(reference, points.shape[1])
        out[HV_RAW_REF] = raw.hypervolume(points)
        definitions[HV_RAW_REF] = definition(raw, None)
    out["hypervolume_definitions"] = definitions
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
    served = {entry["name"]: entry["served"] for entry in models if entry.get("served")}
    trained = ~table["model"].isin([BASE, *served])
    columns = [f"mean_{n}" for n in names]
    points = table.loc[trained, columns].to_numpy(dtype=np.float64)
    base_rows = table[table["model"] == BASE]
    base = base_rows[columns].to_numpy(dtype=np.float64)[0] if len(base_rows) else None
    entries = {r["model"]: {"model": r["model"], "weights": r["weights"], "mean_rewards": [r[c] for c in columns],
                            "collapse_rate": r["collapse_rate"]} for r in rows}
    metrics = {
        "objectives": names,
        "preferences": [entries[name] for name in table.loc[trained, "model"]],
        "base": None if base is None else {"mean_rewards": base.tolist(),
                                           "collapse_rate": float(base_rows["collapse_rate"].iloc[0])},
        **front_hypervolume(points, base, reference_point),
        "collapse_rate": float(scored.loc[scored["model"].isin(table.loc[trained, "model"]), "degenerate"].mean()),
        "collapse_detector": dataclasses.asdict(detector.thresholds),
        "num_test_prompts": int(scored["prompt_id"].nunique()),
    }
    if served:
        metrics.update(served_summary(entries, served, points, base, metrics))
    return table, metrics


def served_summary(entries: dict, served: dict, trained: np.ndarray, base: np.ndarray | None, metrics: dict) -> dict:
    """Where each served preference's point lands against the trained front, on the run's own hypervolume frame
    (fitted over the trained and base points, so the trained front's number is unchanged):

    - ``between_neighbours``: inside the box of the trained models it was made from, on every objective;
    - ``dominated_by_trained``: some trained point is at least as good on every objective and better on one;
    - ``hypervolume_gain``: what adding it alone to the trained front adds;

    and ``hypervolume_minmax_run_worst_with_served``: the trained and served points together."""
    frame = run_frame(trained, base)
    alone = metrics[HV_RUN_WORST]
    out = []
    for name, record in served.items():
        point = np.asarray(entries[name]["mean_rewards"], dtype=np.float64)
        neighbours = np.array([entries[m["model"]]["mean_rewards"] for m in record["from"] if m["model"] in entries])
        inside = bool(len(neighbours) and np.all((point >= neighbours.min(axis=0)) & (point <= neighbours.max(axis=0))))
        dominated = bool(np.any(np.all(trained >= point, axis=1) & np.any(trained > point, axis=1)))
        out.append({**entries[name], "mode": record["mode"], "from": record["from"], "between_neighbours": inside,
                    "dominated_by_trained": dominated,
                    "hypervolume_gain": frame.hypervolume(np.vstack([trained, point])) - alone})
    every = np.vstack([trained, [entry["mean_rewards"] for entry in out]])
    return {"served": out, HV_RUN_WORST_SERVED: frame.hypervolume(every)}


def weights_label(weights, digits: str = ".2f") -> str:
    return format_vector(weights, digits) if weights else "-"


def format_front_table(metrics: dict) -> str:
    names = metrics["objectives"]
    rows = [[p["model"], weights_label(p["weights"])] + [f"{v:.3f}" for v in p["mean_rewards"]]
            + [f"{p['collapse_rate']:.1%}"] for p in metrics["preferences"]]
    if metrics.get("base"):
        rows.append(["base", "-"] + [f"{v:.3f}" for v in metrics["base"]["mean_rewards"]]
                    + [f"{metrics['base']['collapse_rate']:.1%}"])
    rows += [[f"{p['model']} (served)", weights_label(p["weights"])] + [f"{v:.3f}" for v in p["mean_rewards"]]
             + [f"{p['collapse_rate']:.1%}"] for p in metrics.get("served") or ()]
    return format_table(["model", "weights"] + names + ["collapse"], rows)
