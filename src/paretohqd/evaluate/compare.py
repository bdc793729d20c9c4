"""Several runs' fronts on one plot and one table: one hypervolume definition for all, bootstrap intervals over the
test prompts and the seeds, and each method's cost beside the shared scoring.

Hypervolume (docs/concepts/hypervolume.md). The comparison metric is the volume in raw reward units above one reference
point, ``hypervolume_raw_ref``: ``--reference_point`` when given, else the point every run declared before training
(``evaluate.reference_point``, or by default a low quantile of the offline scores: the same for every run on the
same data and objectives). Runs that declared different points are refused. A run's number then does not depend on
which other runs are in the table. The base model's point is shown beside each run's front. The volume normalised
over the union of the compared points with its worst corner as reference (``hypervolume_minmax_union_worst``) is
kept as a secondary column only: a front's extreme points sit on that reference and add nothing, and the value
moves with the company a run keeps. Runs that declared no point (older versions) fall back to it, with a note.

Intervals. A run's per-(model, prompt) scores (``RUN/eval/scores.parquet``) are resampled by test prompt: ``B``
replicates, each drawing the run's prompt ids with replacement (one ``(B, n_prompts)`` matrix of counts), every
model's mean reward vector recomputed for all replicates with one matrix product, and the hypervolume measured on
the comparison's fixed reference point (not refitted per replicate). The interval is the 2.5 and 97.5 percentiles
of the replicates; the same for the collapse rate. Runs on the same test prompt ids get the same draws.

Seeds. Runs of one method (``metrics["method"]``) with distinct seeds (``metrics["seed"]``) are one group: mean and
sample standard deviation (ddof 1) over seeds of the hypervolume, collapse rate and cost, beside the per-seed rows.
Runs of one method that share a seed (other settings) are not aggregated: each is its own group.

ParetoHqD against each other group: a two-level bootstrap. Each replicate resamples each method's seeds (its runs,
with replacement) and the test prompts (one draw for both methods: paired), and takes the difference of the
seed-averaged hypervolumes; P is the share of replicates in which ParetoHqD's is higher (ties one half: two
identical runs give exactly 0.5), beside the 95% interval of the difference. Seed variance is thereby in the test.
Runs on other test prompt ids than ParetoHqD's are left out of the pairing, with a note.

Cost (``metrics["cost"]``, see ``pipeline.evaluate``): per run the method's training and generation wall seconds
and GPU-seconds side by side, their sum, and its ratio to ParetoHqD's (mean over ParetoHqD's seeds); the scoring of
the offline data on a line of its own, shared by every run on the same data and objectives (``scoring_key``).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..errors import UserError
from ..plots import plot_fronts
from ..tables import format_vector
from .bootstrap import bootstrap_counts, bootstrap_indices, interval, probability_higher, replicate_means
from .compare_tables import comparison_footer, comparison_tables, format_comparison
from .html import comparison_page
from .metrics import BASE, HV_RAW_REF, HV_UNION_WORST, UNION_SCOPE, comparison_frame, definition

REFERENCE_METHOD = "ParetoHqD"

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


FEW_PROMPTS = 30
"""Below this many test prompts the percentile bootstrap's intervals are too rough to read (and say so)."""
PER_OBJECTIVE = ("objectives", "weights", "mean_rewards", "raw")
"""The keys of a run's metrics whose lists hold one value per objective, in the run's own order."""


def comparable(runs: list[dict]) -> list[dict]:
    """``runs`` on one front: each run once, every one on the first run's objectives, in its order (a run that
    declared them in another order is reordered); one sentence otherwise."""
    objectives = list(runs[0]["objectives"])
    seen: dict[str, str] = {}
    for run in runs:
        where = str(Path(run["run_dir"]).resolve())
        if where in seen:
            raise UserError(f"{run['run_dir']} is given twice (as {seen[where]} too): each run is compared once")
        seen[where] = str(run["run_dir"])
    for run in runs[1:]:
        if sorted(run["objectives"]) != sorted(objectives):
            raise UserError(f"{run['run_dir']} measures {run['objectives']} but {runs[0]['run_dir']} measures "
                            f"{objectives}: only runs on the same objectives can share a front")
    return [run if list(run["objectives"]) == objectives else in_objective_order(run, objectives) for run in runs]


def in_objective_order(run: dict, objectives: list[str]) -> dict:
    """``run``'s metrics with every per-objective list (:data:`PER_OBJECTIVE`) in the order of ``objectives``: runs
    that declared the same objectives in another order compare on one front."""
    order = [list(run["objectives"]).index(name) for name in objectives]

    def reorder(node, key=None):
        if isinstance(node, dict):
            return {k: reorder(v, k) for k, v in node.items()}
        if isinstance(node, list):
            if key in PER_OBJECTIVE and len(node) == len(order):
                return [node[i] for i in order]
            return [reorder(item) for item in node]
        return node

    return reorder(run)


def run_scores(label: str, run: dict, frame: pd.DataFrame, objectives: list[str]) -> RunScores:
    """The trained models' (not the base model's, nor served preferences' or earlier stages') scores of ``frame``
    (the run's ``eval/scores.parquet``), checked: every objective's column present and finite, every model scored
    once on every test prompt."""
    path = f"{run['run_dir']}/eval/scores.parquet"
    for column in ["model", "prompt_id", "degenerate", *objectives]:
        if column not in frame.columns:
            raise UserError(f"{path} has no column '{column}', which compare needs (its metrics.json measures "
                            f"{', '.join(objectives)})")
    served = [entry["model"] for entry in run.get("served") or ()]
    served += [pair["earlier"] for pair in (run.get("earlier_stage") or {}).get("pairs", ())]
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
    runs = comparable(runs)
    objectives = list(runs[0]["objectives"])
    if reference_point is not None and len(reference_point) != len(objectives):
        raise UserError(f"the reference point has {len(reference_point)} values but there are "
                        f"{len(objectives)} objectives")
    if labels is not None and len(labels) != len(runs):
        raise UserError(f"--labels gives {len(labels)} labels for {len(runs)} runs: give one per run")
    for label in labels or ():
        check_label(label)
    if labels is not None and len(set(labels)) != len(labels):
        raise UserError(f"--labels names two runs {next(x for x in labels if labels.count(x) > 1)!r}: each run needs "
                        "its own label")
    labels = list(labels) if labels is not None else _labels(runs)
    scores = [run_scores(label, run, frame, objectives) for label, run, frame in zip(labels, runs, frames)]
    notes: list[str] = []
    union = np.vstack([s.points for s in scores])
    reference_point, declared_by = shared_reference(runs, reference_point, notes)
    try:
        field, frame = comparison_frame(union, reference_point)
        _, union_frame = comparison_frame(union)
    except ValueError as exc:
        raise UserError(f"compare: {exc}") from None
    if reference_point is not None and not (union > np.asarray(reference_point)).all(axis=1).any():
        # No point lies above the reference in every objective: every run's hypervolume is 0, a table of zeros
        point = format_vector(reference_point, ".4g")
        if declared_by == "--reference_point":
            raise UserError(f"compare: no run's point lies above the reference point {point} (--reference_point) in "
                            "every objective, so every hypervolume would be 0: give a lower reference point")
        notes.append(f"No run's point lies above the reference point {point} ({declared_by}) in every objective, so "
                     "every hypervolume is 0: compare with a lower --reference_point.")

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
    fewest = min(len(prompts) for prompts in prompt_sets)
    if fewest < FEW_PROMPTS:
        notes.append(f"Only {fewest} test prompts: the bootstrap intervals are rough, and a resampled front can leave "
                     "the frame the observed points span, so a hypervolume interval can pass 1 on its 0-1 scale; "
                     f"evaluate on {FEW_PROMPTS} or more prompts before reading them.")

    rows = []
    for s, run in zip(scores, runs):
        hv, collapse = replicates[s.label]["hypervolume"], replicates[s.label]["collapse_rate"]
        row = {"label": s.label, "method": s.method, "seed": s.seed, "run_dir": s.run_dir, "models": len(s.models),
               "num_test_prompts": len(s.prompts), field: frame.hypervolume(s.points),
               **_interval(field, hv), "collapse_rate": float(s.degenerate.mean()),
               HV_UNION_WORST: union_frame.hypervolume(s.points),
               "base_point": (run.get("base") or {}).get("mean_rewards"),
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
            summary.update(_pairing(reference, group, by_label, prompts_of, replicates, notes, bootstrap_seed))
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
        for row in rows:
            if row["label"] in reference["runs"] or prompts_of[row["label"]] != prompts_of[reference["runs"][0]]:
                continue
            row["p_paretohqd_higher"] = _pairing(reference, {"runs": [row["label"]]}, by_label, prompts_of,
                                                 replicates, [], bootstrap_seed)["p_paretohqd_higher"]

    result = {
        "objectives": objectives, "hypervolume_field": field,
        "hypervolume_definition": definition(frame, UNION_SCOPE if field != HV_RAW_REF else None),
        "maximise": True, "reference_method": None if reference is None else reference["label"],
        "reference_point_declared_by": declared_by,
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
    runs = comparable(runs)
    result, _ = compare_frames(runs, frames, reference_point, bootstrap, bootstrap_seed, labels)
    output_dir = Path(output_dir)
    io.write_json(output_dir / "compare.json", result)
    with io.atomic_path(output_dir / "compare.csv") as tmp:
        pd.DataFrame(result["runs"]).to_csv(tmp, index=False)
    bases = [row["base_point"] for row in result["runs"] if row.get("base_point") is not None]
    plot_fronts({label: np.asarray(points, dtype=np.float64) for label, points in result["fronts"].items()},
                result["objectives"], output_dir / "compare.png", FRONTS_TITLE,
                base=np.unique(np.asarray(bases, dtype=np.float64), axis=0) if bases else None)
    io.write_text(output_dir / "compare.md", format_comparison(result, markdown=True) + "\n\n![fronts](compare.png)\n")
    io.write_text(output_dir / "compare.html",
                  comparison_page(FRONTS_TITLE, [(row["label"], run) for row, run in zip(result["runs"], runs)],
                                  comparison_tables(result), comparison_footer(result)))
    return result


# ------------------------------------------------------------------------------------------------------- pieces


def shared_reference(runs: list[dict], given: list[float] | None, notes: list[str]
                     ) -> tuple[list[float] | None, str]:
    """(the raw reference point every run is measured above, who declared it): ``given`` (``--reference_point``),
    else the one every run declared before training (``metrics["reference_point"]``, the same for runs on the same
    data and objectives); runs that declared different ones are refused, since their numbers are not comparable;
    runs that declared none (evaluated by an older version) fall back to the union's worst corner, with a note."""
    if given is not None:
        return [float(v) for v in given], "--reference_point"
    declared = [(run, (run.get("reference_point") or {}).get("raw")) for run in runs]
    if any(point is None for _, point in declared):
        notes.append("Some runs declared no reference point (evaluated by an older version): the hypervolume is "
                     "measured on the union of the compared points, which moves with the company a run keeps; "
                     "evaluate them again, or give --reference_point.")
        return None, "union"
    first_run, first = declared[0]
    for run, point in declared[1:]:
        if not np.allclose(point, first, rtol=1e-9, atol=1e-12):
            raise UserError(f"{run['run_dir']} declared the reference point {format_vector(point, '.4g')} but "
                            f"{first_run['run_dir']} declared {format_vector(first, '.4g')} (other data or objectives, "
                            "or another evaluate.reference_point): give one with --reference_point")
    return [float(v) for v in first], (first_run.get("reference_point") or {}).get("rule", "declared")


def check_label(label: str) -> None:
    """A ``--labels`` value names a run in one cell of compare.md's table, the plot's legend and the page: it must
    have text, and no line break or ``|``, which would end or split that table's row."""
    if not label.strip():
        raise UserError(f"--labels {label!r} is empty: give every run a label with text")
    broken = next((c for c in label if unicodedata.category(c) in ("Cc", "Zl", "Zp") and c != "\t"), None)
    if broken is not None:
        raise UserError(f"--labels {label!r} holds a line break or control character ({broken!r}), which would break "
                        "compare.md's table: give each label on one line")
    if "|" in label:
        raise UserError(f"--labels {label!r} holds '|', which separates the columns of compare.md's table: give "
                        "the label without it")


def _labels(runs: list[dict]) -> list[str]:
    """The method name, qualified by the run folder (then its full path) where that is needed to tell runs apart."""
    methods = [run["method"] for run in runs]
    labels = [m if methods.count(m) == 1 else f"{m} ({Path(run['run_dir']).name})" for m, run in zip(methods, runs)]
    return [label if labels.count(label) == 1 else f"{run['method']} ({run['run_dir']})"
            for label, run in zip(labels, runs)]


def _interval(name: str, replicates: np.ndarray) -> dict:
    low, high = interval(replicates)
    return {f"{name}_ci_low": low, f"{name}_ci_high": high}


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
             notes: list[str], seed: int) -> dict:
    """P(ParetoHqD's hypervolume > the group's) from a two-level bootstrap: each replicate resamples each method's
    seeds (its runs, with replacement) and the test prompts (the same draw for both), and compares the
    seed-averaged hypervolumes; with the interval of that seed-averaged difference. Runs whose prompt sets differ
    from the others' are left out, with a note."""
    ours, theirs = reference["runs"], group["runs"]
    common = [label for label in ours + theirs if prompts_of[label] == prompts_of[ours[0]]]
    left_out = [label for label in ours + theirs if label not in common]
    if left_out:
        notes.append(f"{', '.join(left_out)} were evaluated on other test prompt ids than {ours[0]}, so they are "
                     "not paired with it.")
    a = np.array([replicates[label]["hypervolume"] for label in ours if label in common])
    b = np.array([replicates[label]["hypervolume"] for label in theirs if label in common])
    if a.size == 0 or b.size == 0:
        return {"p_paretohqd_higher": None, "pairing": "none", "difference_ci": None}
    difference = seed_averaged(a, seed, 1) - seed_averaged(b, seed, 2)
    return {"p_paretohqd_higher": probability_higher(difference, 0.0),
            "pairing": f"two-level bootstrap ({len(a)} x {len(b)} seeds, prompts paired)",
            "difference_ci": interval(difference)}


def seed_averaged(replicates: np.ndarray, seed: int, stream: int) -> np.ndarray:
    """``(n_seeds, B)`` per-run bootstrap replicates (the same prompt draws in column b) -> ``(B,)``: in each
    replicate the mean over a resample of the seeds, drawn with replacement."""
    n, B = replicates.shape
    drawn = np.random.default_rng([seed, 1_000 + stream]).integers(0, n, size=(B, n))
    return replicates[drawn, np.arange(B)[:, None]].mean(axis=1)


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
