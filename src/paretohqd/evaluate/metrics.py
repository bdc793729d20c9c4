"""The held-out front of one run from its scored generations: one point per model (its mean raw reward vector),
hypervolume with a recorded reference point and normalisation, collapse rate. Pure computations over frames."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..data import TRUNCATED
from ..pareto.indicators import HypervolumeFrame, minmax_frame, raw_frame
from ..tables import format_table, format_vector
from .bootstrap import bootstrap_counts, bootstrap_indices, interval, probability_higher, replicate_means
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
BASE_HV_RAW_REF = "base_hypervolume_raw_ref"
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
    """Hypervolumes of one run's aligned models' points: ``hypervolume_minmax_run_worst`` (the union normalisation
    of docs/concepts/hypervolume.md with this run's aligned and base points as the union: min-max over them,
    reference = their worst corner); with a base model also its own point's volume on that frame
    (``base_hypervolume_minmax_run_worst``) and the aligned front's volume with the base point as reference
    (``hypervolume_minmax_run_base``: the region gained over the model it started from); with a raw ``reference``
    point ``hypervolume_raw_ref`` (raw units). Each name's normalisation and reference point are in
    ``hypervolume_definitions``."""
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
              reference_point: list[float] | None = None, scales: list[float] | None = None,
              bootstrap: int = 1000, bootstrap_seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Per-model table and the front metrics. ``scored``: one row per (model, prompt) with a ``model`` column, a
    ``degenerate`` flag and one column per objective; ``models``: ``{"name", "weights" (or None)}``, the base
    model named ``base``. ``scales``: fixed per-objective scales (declared before the run) in which a preference
    weighs the objectives for the paired differences with the base model (:func:`paired_with_base`)."""
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
    earlier = {entry["name"]: entry["earlier_stage_of"] for entry in models if entry.get("earlier_stage_of")}
    trained = ~table["model"].isin([BASE, *served, *earlier])
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
    if TRUNCATED in scored.columns:
        metrics["truncated_share"] = {name: float(part[TRUNCATED].mean())
                                      for name, part in scored.groupby("model", sort=False)}
    if base is not None and reference_point is not None:
        metrics[BASE_HV_RAW_REF] = raw_frame(reference_point, len(names)).hypervolume(base[None, :])
    scales = list(scales or [1.0] * len(names))
    if base is not None:
        metrics["vs_base"] = paired_with_base(scored, [e for e in models if e.get("weights") is not None
                                                       and e["name"] not in served and e["name"] not in earlier],
                                              names, scales, bootstrap, bootstrap_seed)
        metrics["vs_base_scales"] = scales
    if earlier:
        metrics["earlier_stage"] = earlier_stage_summary(scored, models, earlier, entries, names, scales,
                                                         reference_point, bootstrap, bootstrap_seed)
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


def paired_with_base(scored: pd.DataFrame, models: list[dict], names: list[str], scales: list[float],
                     bootstrap: int, seed: int) -> list[dict]:
    """Per trained model, its paired differences with the base model on the same test prompts: on each objective
    (raw units), and along its own preference (the difference of ``sum_i w_i r_i / scale_i``, the preference's
    weights on rewards in fixed units); each with a 95% bootstrap interval over the prompts (the same draws for
    every model) and the bootstrap share of replicates in which the model is ahead."""
    paired = PairedScores(scored, names, scales, bootstrap, seed)
    out = []
    for entry in models:
        diff, along, draws = paired.difference(entry["name"], BASE, entry["weights"])
        out.append({"model": entry["name"], "weights": [float(w) for w in entry["weights"]],
                    "difference": diff.mean(axis=0).tolist(),
                    "difference_ci": [interval(draws[:, j]) for j in range(len(names))],
                    "along_preference": float(along.mean()), "along_preference_ci": interval(draws[:, -1]),
                    "p_ahead": probability_higher(draws[:, -1], 0.0)})
    return out


def earlier_stage_summary(scored: pd.DataFrame, models: list[dict], earlier: dict[str, str], entries: dict,
                          names: list[str], scales: list[float], reference_point: list[float] | None,
                          bootstrap: int, seed: int) -> dict:
    """What the later stage adds (ParetoHqD's stage-2 ablation): each earlier-stage model's point, its paired
    difference with the final model of its preference along that preference (final minus earlier, on the same
    prompts, bootstrap interval), and the earlier front's hypervolume above the same reference point."""
    weights = {e["name"]: e["weights"] for e in models}
    paired = PairedScores(scored, names, scales, bootstrap, seed)
    pairs = []
    for name, final in earlier.items():
        _, along, draws = paired.difference(final, name, weights[final])
        pairs.append({"model": final, "earlier": name, "weights": weights[final],
                      "earlier_mean_rewards": entries[name]["mean_rewards"],
                      "earlier_collapse_rate": entries[name]["collapse_rate"],
                      "gain_along_preference": float(along.mean()), "gain_ci": interval(draws[:, -1]),
                      "p_later_ahead": probability_higher(draws[:, -1], 0.0)})
    out: dict = {"pairs": pairs}
    if reference_point is not None:
        points = np.array([pair["earlier_mean_rewards"] for pair in pairs], dtype=np.float64)
        out[HV_RAW_REF] = raw_frame(reference_point, len(names)).hypervolume(points)
    return out


class PairedScores:
    """Every model's rewards by test prompt, and one set of bootstrap draws over the prompts for all pairs."""

    def __init__(self, scored: pd.DataFrame, names: list[str], scales: list[float], bootstrap: int, seed: int):
        self.table = scored.pivot_table(index="prompt_id", columns="model", values=names, aggfunc="first")
        self.names, self.scales = names, np.asarray(scales, dtype=np.float64)
        self.counts = bootstrap_counts(bootstrap_indices(len(self.table), bootstrap, seed), len(self.table))

    def rewards(self, model: str) -> np.ndarray:
        return self.table.xs(model, axis=1, level="model")[self.names].to_numpy(dtype=np.float64)

    def difference(self, model: str, other: str, weights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(per-prompt differences ``(n, M)``, along ``weights`` ``(n,)``, bootstrap means of both ``(B, M+1)``)."""
        diff = self.rewards(model) - self.rewards(other)
        along = diff @ (np.asarray(weights, dtype=np.float64) / self.scales)
        return diff, along, replicate_means(self.counts, np.column_stack([diff, along]))


def format_vs_base_table(metrics: dict) -> str:
    """Each model against the base model on the same prompts: differences with their 95% intervals."""
    names = metrics["objectives"]
    rows = [[p["model"], weights_label(p["weights"])]
            + [f"{d:+.3f} [{lo:+.2f}, {hi:+.2f}]" for d, (lo, hi) in zip(p["difference"], p["difference_ci"])]
            + [f"{p['along_preference']:+.3f} [{p['along_preference_ci'][0]:+.2f}, "
               f"{p['along_preference_ci'][1]:+.2f}]"] for p in metrics["vs_base"]]
    scales = ", ".join(f"{n} {s:.3g}" for n, s in zip(names, metrics["vs_base_scales"]))
    return format_table(["model", "weights"] + [f"d {n} [95%]" for n in names] + ["d along w [95%]"], rows,
                        [f"paired by test prompt, bootstrap over prompts; along w: sum of w_i x d_i / scale_i, "
                         f"scales: {scales}"])


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
    rows += [[f"{p['earlier']} (earlier stage)", weights_label(p["weights"])]
             + [f"{v:.3f}" for v in p["earlier_mean_rewards"]] + [f"{p['earlier_collapse_rate']:.1%}"]
             for p in (metrics.get("earlier_stage") or {}).get("pairs", ())]
    return format_table(["model", "weights", *names, "collapse"], rows)
