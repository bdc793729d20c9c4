"""Several runs' fronts on one plot and one table: one hypervolume definition for all, bootstrap intervals over the
test prompts, seeds aggregated, and each method's cost beside the shared scoring.

Hypervolume. Hypervolumes of separate runs are not comparable when each normalised over its own points; here every
objective is min-max normalised over the union of all compared runs' points (their aligned models' mean raw reward
vectors; the base models are left out) and the reference point is the worst corner of that union (METHOD.md section
3 DEFAULT), field ``hypervolume_minmax_union_worst``; or, given a raw reference point, the volume in raw units above
it, ``hypervolume_raw_ref`` (the same number as ``paretohqd evaluate`` gives with that ``evaluate.reference_point``).
The normalisation bounds and reference point are recorded with the numbers.

Intervals. A run's per-(model, prompt) scores (``RUN/eval/scores.parquet``) are resampled by test prompt: ``B``
replicates, each drawing the run's prompt ids with replacement (one ``(B, n_prompts)`` matrix of counts), every
model's mean reward vector recomputed for all replicates with one matrix product, and the hypervolume measured on
the comparison's fixed normalisation and reference point (not refitted per replicate). The interval is the 2.5 and
97.5 percentiles of the replicates (numpy's linear interpolation); the same for the collapse rate (share of the
aligned models' responses that are degenerate). Runs on the same test prompt ids get the same draws.

Seeds. Runs of one method (``metrics["method"]``) with distinct seeds (``metrics["seed"]``) are one group: mean and
sample standard deviation (ddof 1) over seeds of the hypervolume, collapse rate and cost, beside the per-seed rows.
Runs of one method that share a seed (other settings) are not aggregated: each is its own group.

ParetoHqD against each other group: the paired bootstrap probability that ParetoHqD's hypervolume is higher, the
share of replicates in which it is, both runs measured on the same resampled prompt ids, ties counting one half (two
identical runs give exactly 0.5). With several seeds, the pairs are ParetoHqD's and the method's runs of the same
seed (``seed-by-seed``) when the two share any seed, otherwise every ParetoHqD run with every run of the method
(``pooled``); the probability is the mean over the pairs, each pair recorded. Pairing needs the same test prompt ids:
a pair whose prompt sets differ is left out, with a note, and without any pair the probability is None.

Cost (``metrics["cost"]``, see ``pipeline.evaluate``): per run the method's training and generation wall seconds
and GPU-seconds side by side, their sum, and its ratio to ParetoHqD's (mean over ParetoHqD's seeds); the scoring of
the offline data on a line of its own, shared by every run on the same data and objectives (``scoring_key``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..errors import UserError
from ..plots import plot_fronts
from ..tables import format_table, format_vector
from .html import comparison_page
from .metrics import BASE, HV_RAW_REF, UNION_SCOPE, comparison_frame, definition

REFERENCE_METHOD = "ParetoHqD"
INTERVAL = (2.5, 97.5)
COST_FIELDS = ("training", "generation", "method", "scoring")
FRONTS_TITLE = "Held-out fronts, one shared reference point"


@dataclass
class RunScores:
    """One run's aligned models' scores as arrays over its sorted test prompt ids."""

    label: str
    method: str
    seed: object
    run_dir: str
    prompts: tuple[str, ...]
    models: list[str]
    rewards: np.ndarray
    """``(n_prompts, n_models, n_objectives)`` raw rewards."""
    degenerate: np.ndarray
    """``(n_prompts, n_models)`` 1.0 where the response is degenerate."""

    @property
    def points(self) -> np.ndarray:
        """Each model's mean reward vector over every prompt: the front, ``(n_models, n_objectives)``."""
        return self.rewards.mean(axis=0)


def run_scores(label: str, run: dict, frame: pd.DataFrame, objectives: list[str]) -> RunScores:
    """The trained models' (not the base model's, nor served preferences') scores of ``frame`` (the run's
    ``eval/scores.parquet``), checked: every objective's column present and finite, every model scored once on
    every test prompt."""
    path = f"{run['run_dir']}/eval/scores.parquet"
    for column in ["model", "prompt_id", "degenerate", *objectives]:
        if column not in frame.columns:
            raise UserError(f"{path} has no column '{column}', which compare needs (its metrics.json measures "
                            f"{', '.join(objectives)})")
    served = [entry["model"] for entry in run.get("served") or ()]
    aligned = frame.loc[~frame["model"].isin([BASE, *served]), ["model", "prompt_id", "degenerate", *objectives]].copy()
    if aligned.empty:
        raise UserError(f"{path} holds no aligned model's scores")
    aligned["prompt_id"] = aligned["prompt_id"].astype(str)
    values = aligned[objectives].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        row, col = np.argwhere(~np.isfinite(values))[0]
        raise UserError(f"{path} has a non-finite '{objectives[col]}' score for model "
                        f"{aligned['model'].iloc[row]!r} on prompt {aligned['prompt_id'].iloc[row]!r}")
    duplicated = aligned.duplicated(["model", "prompt_id"])
    if duplicated.any():
        first = aligned[duplicated].iloc[0]
        raise UserError(f"{path} scores model {first['model']!r} more than once on prompt {first['prompt_id']!r}")
    present = list(dict.fromkeys(aligned["model"]))
    declared = [p["model"] for p in run.get("preferences", []) if p.get("model") in set(present)]
    models = declared + [m for m in present if m not in set(declared)]
    prompts = tuple(sorted(set(aligned["prompt_id"])))
    for model, count in aligned.groupby("model", sort=False).size().items():
        if count != len(prompts):
            raise UserError(f"{path}: model {model!r} has scores on {count} of the {len(prompts)} test prompts; "
                            "compare needs every model's answer to every prompt")
    index = pd.MultiIndex.from_product([prompts, models], names=["prompt_id", "model"])
    table = aligned.set_index(["prompt_id", "model"]).reindex(index)
    rewards = table[objectives].to_numpy(dtype=np.float64).reshape(len(prompts), len(models), len(objectives))
    degenerate = table["degenerate"].to_numpy(dtype=np.float64).reshape(len(prompts), len(models))
    return RunScores(label, run["method"], run.get("seed"), str(run["run_dir"]), prompts, models, rewards, degenerate)


def bootstrap_indices(n: int, replicates: int, seed: int, stream: int = 0) -> np.ndarray:
    """``(replicates, n)`` prompt positions drawn with replacement; ``stream`` tells apart the draws of runs on
    other prompt sets (the same ``seed`` and ``stream`` give the same draws)."""
    return np.random.default_rng([seed, stream]).integers(0, n, size=(replicates, n))


def bootstrap_counts(indices: np.ndarray, n: int) -> np.ndarray:
    """How often each of ``n`` prompts was drawn in each replicate: ``(B, n)``, each row summing to ``n``."""
    B = indices.shape[0]
    flat = (indices + n * np.arange(B)[:, None]).ravel()
    return np.bincount(flat, minlength=B * n).reshape(B, n).astype(np.float64)


def replicate_means(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Means over resampled prompts of ``values`` ``(n, ...)`` for every replicate at once: ``(B, ...)``."""
    n = values.shape[0]
    return (counts @ values.reshape(n, -1) / counts.sum(axis=1, keepdims=True)).reshape((-1,) + values.shape[1:])


def probability_higher(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Paired bootstrap probability that ``ours`` is higher: replicates where it is, ties counting one half."""
    return float(np.mean(ours > theirs) + 0.5 * np.mean(ours == theirs))


def compare_frames(runs: list[dict], frames: list[pd.DataFrame], reference_point: list[float] | None = None,
                   bootstrap: int = 1000, bootstrap_seed: int = 0, labels: list[str] | None = None
                   ) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """The comparison of ``runs`` (each run's ``eval/metrics.json`` with its ``run_dir``) from their
    ``eval/scores.parquet`` ``frames``: (the result written to compare.json, per run label its bootstrap replicates
    ``{"hypervolume": (B,), "collapse_rate": (B,)}``). ``labels``: how the table names each run (default: its
    method, qualified by its folder where needed). Pure: reads and writes nothing."""
    if len(runs) < 1:
        raise UserError("compare needs at least one run directory")
    if bootstrap < 1:
        raise UserError(f"--bootstrap must be at least 1, not {bootstrap}")
    objectives = list(runs[0]["objectives"])
    for run in runs[1:]:
        if list(run["objectives"]) != objectives:
            raise UserError(f"{run['run_dir']} measures {run['objectives']} but {runs[0]['run_dir']} measures "
                            f"{objectives}: only runs on the same objectives can share a front")
    if reference_point is not None and len(reference_point) != len(objectives):
        raise UserError(f"the reference point has {len(reference_point)} values but there are "
                        f"{len(objectives)} objectives")
    if labels is not None and len(labels) != len(runs):
        raise UserError(f"--labels gives {len(labels)} labels for {len(runs)} runs: give one per run")
    if labels is not None and len(set(labels)) != len(labels):
        raise UserError(f"--labels names two runs {next(x for x in labels if labels.count(x) > 1)!r}: each run needs "
                        "its own label")
    labels = list(labels) if labels is not None else _labels(runs)
    scores = [run_scores(label, run, frame, objectives) for label, run, frame in zip(labels, runs, frames)]
    try:
        field, frame = comparison_frame(np.vstack([s.points for s in scores]), reference_point)
    except ValueError as exc:
        raise UserError(f"compare: {exc}") from None
    notes: list[str] = []

    # Bootstrap: one set of draws per distinct test prompt set, shared by every run on it.
    prompt_sets = list(dict.fromkeys(s.prompts for s in scores))
    replicates: dict[str, dict[str, np.ndarray]] = {}
    for stream, prompts in enumerate(prompt_sets):
        counts = bootstrap_counts(bootstrap_indices(len(prompts), bootstrap, bootstrap_seed, stream), len(prompts))
        for s in (s for s in scores if s.prompts == prompts):
            replicates[s.label] = {"hypervolume": frame.hypervolumes(replicate_means(counts, s.rewards)),
                                   "collapse_rate": replicate_means(counts, s.degenerate).mean(axis=1)}
    if len(prompt_sets) > 1:
        notes.append(f"The runs hold {len(prompt_sets)} different sets of test prompt ids: each set's runs get their "
                     "own bootstrap draws, and runs on different sets are not paired.")

    rows = []
    for s, run in zip(scores, runs):
        hv, collapse = replicates[s.label]["hypervolume"], replicates[s.label]["collapse_rate"]
        row = {"label": s.label, "method": s.method, "seed": s.seed, "run_dir": s.run_dir, "models": len(s.models),
               "num_test_prompts": len(s.prompts), field: frame.hypervolume(s.points),
               **_interval(field, hv), "collapse_rate": float(s.degenerate.mean()),
               **_interval("collapse_rate", collapse)}
        row.update(_cost_fields(run, notes, s.label))
        rows.append(row)

    groups = _groups(rows, notes)
    reference = next((g for g in groups if g["method"] == REFERENCE_METHOD), None)
    by_label = {row["label"]: row for row in rows}
    prompts_of = {s.label: s.prompts for s in scores}
    methods = []
    for group in groups:
        members = [by_label[label] for label in group["runs"]]
        summary = {"method": group["label"], "runs": group["runs"], "seeds": [m["seed"] for m in members],
                   "n_runs": len(members), **_spread(field, [m[field] for m in members]),
                   **_spread("collapse_rate", [m["collapse_rate"] for m in members])}
        for name in COST_FIELDS:
            for unit in ("wall_seconds", "gpu_seconds"):
                key = f"{name}_{unit}"
                values = [m[key] for m in members]
                summary[f"{key}_mean"] = None if None in values else float(np.mean(values))
        if reference is not None and group is not reference:
            summary.update(_pairing(reference, group, by_label, prompts_of, replicates, notes))
        methods.append(summary)

    if reference is not None:
        ours = next(m for m in methods if m["method"] == reference["label"])
        hv_ours, time_ours = ours[f"{field}_mean"], ours["method_wall_seconds_mean"]
        for target, hv, seconds in ([(r, r[field], r["method_wall_seconds"]) for r in rows]
                                    + [(m, m[f"{field}_mean"], m["method_wall_seconds_mean"]) for m in methods]):
            target["hypervolume_vs_paretohqd"] = hv / hv_ours if hv_ours else None
            target["time_vs_paretohqd"] = seconds / time_ours if seconds is not None and time_ours else None
        for row in rows:
            row["p_paretohqd_higher"] = None
        for method in methods:
            for pair in method.get("pairs", []):
                by_label[pair["other"]].setdefault("_p", []).append(pair["p"])
        for row in rows:
            values = row.pop("_p", None)
            row["p_paretohqd_higher"] = float(np.mean(values)) if values else None

    result = {
        "objectives": objectives, "hypervolume_field": field,
        "hypervolume_definition": definition(frame, UNION_SCOPE if field != HV_RAW_REF else None),
        "maximise": True, "reference_method": None if reference is None else reference["label"],
        "bootstrap": {"replicates": int(bootstrap), "seed": int(bootstrap_seed), "resampled": "test prompt ids",
                      "interval": "95% percentile (2.5, 97.5)", "prompt_sets": len(prompt_sets),
                      "tie_rule": "ties count one half"},
        "runs": rows, "methods": methods, "scoring": _scoring_lines(rows), "notes": notes,
        "fronts": {s.label: s.points.tolist() for s in scores},
    }
    return result, replicates


def compare_runs(runs: list[dict], frames: list[pd.DataFrame], output_dir: str | Path,
                 reference_point: list[float] | None = None, bootstrap: int = 1000, bootstrap_seed: int = 0,
                 labels: list[str] | None = None) -> dict:
    """``runs``: each run's metrics (``eval/metrics.json``) with its ``run_dir``; ``frames``: each run's
    per-(model, prompt) scores (``eval/scores.parquet``); writes compare.json/.csv/.png/.md and compare.html (the
    fronts and tables on one self-contained page) into ``output_dir`` and returns the comparison."""
    if len(runs) < 1:
        raise UserError("compare needs at least one run directory")
    result, _ = compare_frames(runs, frames, reference_point, bootstrap, bootstrap_seed, labels)
    output_dir = Path(output_dir)
    io.write_json(output_dir / "compare.json", result)
    with io.atomic_path(output_dir / "compare.csv") as tmp:
        pd.DataFrame(result["runs"]).to_csv(tmp, index=False)
    plot_fronts({label: np.asarray(points, dtype=np.float64) for label, points in result["fronts"].items()},
                result["objectives"], output_dir / "compare.png", FRONTS_TITLE)
    io.write_text(output_dir / "compare.md", format_comparison(result, markdown=True) + "\n\n![fronts](compare.png)\n")
    io.write_text(output_dir / "compare.html",
                  comparison_page(FRONTS_TITLE, [(row["label"], run) for row, run in zip(result["runs"], runs)],
                                  comparison_tables(result), comparison_footer(result)))
    return result


# ------------------------------------------------------------------------------------------------------- pieces


def _labels(runs: list[dict]) -> list[str]:
    """The method name, qualified by the run folder (then its full path) where that is needed to tell runs apart."""
    methods = [run["method"] for run in runs]
    labels = [m if methods.count(m) == 1 else f"{m} ({Path(run['run_dir']).name})" for m, run in zip(methods, runs)]
    return [label if labels.count(label) == 1 else f"{run['method']} ({run['run_dir']})"
            for label, run in zip(labels, runs)]


def _interval(name: str, replicates: np.ndarray) -> dict:
    low, high = np.percentile(replicates, INTERVAL)
    return {f"{name}_ci_low": float(low), f"{name}_ci_high": float(high)}


def _spread(name: str, values: list[float]) -> dict:
    return {f"{name}_mean": float(np.mean(values)),
            f"{name}_sd": float(np.std(values, ddof=1)) if len(values) > 1 else None}


def _cost_fields(run: dict, notes: list[str], label: str) -> dict:
    """The run's cost lines, flat: ``training_wall_seconds``, ... ``scoring_gpu_seconds``, ``scoring_key``."""
    cost = run.get("cost")
    fields = {f"{name}_{unit}": None for name in COST_FIELDS for unit in ("wall_seconds", "gpu_seconds")}
    fields["scoring_key"] = None
    if not cost:
        notes.append(f"{label} ({run['run_dir']}) has no cost record in eval/metrics.json (evaluated by an older "
                     "version): its cost is left out; run `paretohqd evaluate CONFIG` for it again.")
        return fields
    for name in COST_FIELDS:
        for unit in ("wall_seconds", "gpu_seconds"):
            fields[f"{name}_{unit}"] = float(cost[name][unit])
    fields["scoring_key"] = cost["scoring"].get("key")
    return fields


def _groups(rows: list[dict], notes: list[str]) -> list[dict]:
    """Runs of one method with distinct seeds form one group (labelled by the method); a method whose runs repeat
    a seed is split into one group per run (labelled by the run)."""
    by_method: dict[str, list[dict]] = {}
    for row in rows:
        by_method.setdefault(row["method"], []).append(row)
    groups = []
    for method, members in by_method.items():
        seeds = [m["seed"] for m in members]
        if len(members) > 1 and len(set(map(repr, seeds))) < len(seeds):
            notes.append(f"The {len(members)} {method} runs do not all have distinct seeds, so they are not "
                         "aggregated over seeds: each is its own row.")
            groups += [{"label": m["label"], "method": method, "runs": [m["label"]]} for m in members]
        else:
            groups.append({"label": method if len(members) > 1 else members[0]["label"], "method": method,
                           "runs": [m["label"] for m in members]})
    return groups


def _pairing(reference: dict, group: dict, by_label: dict, prompts_of: dict, replicates: dict,
             notes: list[str]) -> dict:
    """P(ParetoHqD's hypervolume > the group's), seed by seed where the seeds match, else pooled (module text)."""
    ours, theirs = reference["runs"], group["runs"]
    matched = [(a, b) for a in ours for b in theirs if repr(by_label[a]["seed"]) == repr(by_label[b]["seed"])]
    mode, candidates = ("seed-by-seed", matched) if matched else ("pooled", [(a, b) for a in ours for b in theirs])
    pairs = []
    for a, b in candidates:
        if prompts_of[a] != prompts_of[b]:
            notes.append(f"{a} and {b} were evaluated on different test prompt ids, so they are not paired.")
            continue
        pairs.append({"paretohqd": a, "other": b, "seed": by_label[b]["seed"] if mode == "seed-by-seed" else None,
                      "p": probability_higher(replicates[a]["hypervolume"], replicates[b]["hypervolume"])})
    return {"p_paretohqd_higher": float(np.mean([p["p"] for p in pairs])) if pairs else None,
            "pairing": mode if pairs else "none", "pairs": pairs}


def _scoring_lines(rows: list[dict]) -> list[dict]:
    """One line per scoring of the offline data (same data and objectives: same key), with the runs sharing it."""
    lines: dict[object, dict] = {}
    for row in rows:
        if row["scoring_wall_seconds"] is None or row["scoring_key"] is None:
            continue
        line = lines.setdefault(row["scoring_key"], {"key": row["scoring_key"], "runs": [], "wall": [], "gpu": []})
        line["runs"].append(row["label"])
        line["wall"].append(row["scoring_wall_seconds"])
        line["gpu"].append(row["scoring_gpu_seconds"])
    return [{"key": line["key"], "runs": line["runs"], "wall_seconds": float(np.mean(line["wall"])),
             "gpu_seconds": float(np.mean(line["gpu"])),
             "wall_seconds_range": [float(min(line["wall"])), float(max(line["wall"]))]} for line in lines.values()]


# ------------------------------------------------------------------------------------------------------- tables


def _number(value, digits: str = ".0f") -> str:
    return "-" if value is None else f"{value:{digits}}"


def format_comparison(result: dict, markdown: bool = False) -> str:
    """The comparison as text for the terminal, or as Markdown tables (``markdown``) for compare.md."""
    render = _markdown_table if markdown else format_table
    parts = [render(header, rows) for header, rows in comparison_tables(result)]
    parts.append("\n".join(("- " if markdown else "") + line for line in comparison_footer(result)))
    return "\n\n".join(parts)


def comparison_tables(result: dict) -> list[tuple[list[str], list[list[str]]]]:
    """The comparison's tables as (header, rows) of formatted cells: one row per run, then, when some method has
    several seeds, one row per method (mean and spread over its seeds). Every rendering (terminal, compare.md,
    compare.html) draws these."""
    field = result["hypervolume_field"]
    with_ratios = result["reference_method"] is not None
    with_gpu = any((row.get("method_gpu_seconds") or 0) > 0 for row in result["runs"])
    header = ["run", "seed", "models", "prompts", "HV [95% CI]", "collapse [95% CI]"]
    if with_ratios:
        header += [f"P({result['reference_method']} > run)", "HV / ParetoHqD"]
    header += ["train s", "gen s", "train+gen s"] + (["train+gen GPU-s"] if with_gpu else [])
    if with_ratios:
        header.append("time / ParetoHqD")
    rows = []
    for row in result["runs"]:
        cells = [row["label"], "-" if row["seed"] is None else str(row["seed"]), str(row["models"]),
                 str(row["num_test_prompts"]),
                 f"{row[field]:.4f} [{row[field + '_ci_low']:.4f}, {row[field + '_ci_high']:.4f}]",
                 f"{row['collapse_rate']:.1%} [{row['collapse_rate_ci_low']:.1%}, {row['collapse_rate_ci_high']:.1%}]"]
        if with_ratios:
            cells += [_number(row.get("p_paretohqd_higher"), ".3f"), _number(row.get("hypervolume_vs_paretohqd"),
                                                                            ".3f")]
        cells += [_number(row["training_wall_seconds"]), _number(row["generation_wall_seconds"]),
                  _number(row["method_wall_seconds"])] + ([_number(row["method_gpu_seconds"])] if with_gpu else [])
        if with_ratios:
            cells.append(_number(row.get("time_vs_paretohqd"), ".3f"))
        rows.append(cells)
    tables = [(header, rows)]
    if any(m["n_runs"] > 1 for m in result["methods"]):
        header = ["method", "seeds", "HV mean ± sd", "collapse mean ± sd"]
        header += ([f"P({result['reference_method']} > method)", "pairing"] if with_ratios else [])
        header += ["train s", "gen s", "train+gen s"] + (["time / ParetoHqD"] if with_ratios else [])
        rows = []
        for m in result["methods"]:
            cells = [m["method"], ", ".join("-" if s is None else str(s) for s in m["seeds"]),
                     f"{m[field + '_mean']:.4f} ± {_number(m[field + '_sd'], '.4f')}",
                     f"{m['collapse_rate_mean']:.1%} ± "
                     f"{'-' if m['collapse_rate_sd'] is None else format(m['collapse_rate_sd'], '.1%')}"]
            if with_ratios:
                cells += [_number(m.get("p_paretohqd_higher"), ".3f"), m.get("pairing") or "-"]
            cells += [_number(m["training_wall_seconds_mean"]), _number(m["generation_wall_seconds_mean"]),
                      _number(m["method_wall_seconds_mean"])]
            if with_ratios:
                cells.append(_number(m.get("time_vs_paretohqd"), ".3f"))
            rows.append(cells)
        tables.append((header, rows))
    return tables


def comparison_footer(result: dict) -> list[str]:
    """The lines under the tables: the hypervolume's definition, the intervals, the cost, the notes."""
    field, record = result["hypervolume_field"], result["hypervolume_definition"]
    reference = record["reference_point"]
    if field == HV_RAW_REF:
        lines = [f"hypervolume {field}: raw reward units above the reference point {format_vector(reference['raw'])} "
                 "(comparable with paretohqd evaluate's number for the same evaluate.reference_point)"]
    else:
        norm = record["normalisation"]
        lines = [f"hypervolume {field}: shared normalisation: min-max over all compared points, low "
                 f"{format_vector(norm['low'])}, high {format_vector(norm['high'])}; reference point "
                 f"{format_vector(reference['raw'])} raw = {format_vector(reference['normalised'])} normalised "
                 "(the worst corner)"]
    boot = result["bootstrap"]
    lines.append(f"intervals: 95% percentile bootstrap over test prompt ids, {boot['replicates']} replicates, seed "
                 f"{boot['seed']}, on that fixed normalisation and reference point"
                 + ("; P(ParetoHqD > run): share of replicates, the same resampled prompts for both, in which "
                    "ParetoHqD's hypervolume is higher (ties count one half)" if result["reference_method"] else ""))
    lines.append("cost: wall seconds of the method's own units (every recorded attempt); train = training and "
                 "selection, gen = generation (stage-2 / online data and held-out answers)")
    for line in result["scoring"]:
        spread = line["wall_seconds_range"]
        lines.append(f"scoring of the offline data, shared by {', '.join(line['runs'])} and in no method's cost: "
                     f"{line['wall_seconds']:.0f} s wall, {line['gpu_seconds']:.0f} GPU-s"
                     + (f" (per run {spread[0]:.0f}-{spread[1]:.0f} s: each merges on its own)"
                        if spread[1] - spread[0] >= 1 else ""))
    unscored = [row["label"] for row in result["runs"]
                if row["scoring_wall_seconds"] is not None and row["scoring_key"] is None]
    if unscored:
        lines.append(f"no scoring of the offline data for {', '.join(unscored)} (the method does not use the scores)")
    return lines + result["notes"]


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)
