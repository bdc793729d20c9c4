"""Several runs' fronts on one plot and one table, with one shared reference point.

Hypervolumes of separate runs are not comparable when each normalised over its own points; here every objective is
min-max normalised over the union of all compared runs' points and the reference point is the worst corner of that
union (METHOD.md section 3 DEFAULT), or a given raw reference point. Both are recorded with the numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..errors import UserError
from ..pareto import normalised_hypervolume
from ..plots import plot_fronts
from ..tables import format_table, format_vector

REFERENCE_METHOD = "ParetoHqD"


def compare_runs(runs: list[dict], output_dir: str | Path, reference_point: list[float] | None = None) -> dict:
    """``runs``: each run's metrics (``eval/metrics.json``) with its ``run_dir``; writes compare.json/.csv/.png/.md
    into ``output_dir`` and returns the comparison."""
    if len(runs) < 1:
        raise UserError("compare needs at least one run directory")
    objectives = runs[0]["objectives"]
    for run in runs[1:]:
        if run["objectives"] != objectives:
            raise UserError(f"{run['run_dir']} measures {run['objectives']} but {runs[0]['run_dir']} measures "
                            f"{objectives}: only runs on the same objectives can share a front")
    if reference_point is not None and len(reference_point) != len(objectives):
        raise UserError(f"the reference point has {len(reference_point)} values but there are "
                        f"{len(objectives)} objectives")
    labels = _labels(runs)
    point_sets = {label: np.array([p["mean_rewards"] for p in run["preferences"]], dtype=np.float64)
                  for label, run in zip(labels, runs)}
    try:
        shared = normalised_hypervolume(point_sets, reference=reference_point)
    except ValueError as exc:
        raise UserError(f"compare: {exc}") from None
    reference = next((label for label, run in zip(labels, runs) if run["method"] == REFERENCE_METHOD), None)
    rows = []
    for label, run in zip(labels, runs):
        row = {"label": label, "method": run["method"], "run_dir": run["run_dir"], "models": len(run["preferences"]),
               "hypervolume": shared["hypervolume"][label], "collapse_rate": run["collapse_rate"],
               "wall_seconds": run["wall_seconds"]["total"], "num_test_prompts": run["num_test_prompts"]}
        if reference is not None:
            ours = next(r for lab, r in zip(labels, runs) if lab == reference)
            hv_ours = shared["hypervolume"][reference]
            row["hypervolume_vs_paretohqd"] = row["hypervolume"] / hv_ours if hv_ours > 0 else None
            row["time_vs_paretohqd"] = row["wall_seconds"] / ours["wall_seconds"]["total"]
        rows.append(row)
    result = {"objectives": objectives, "runs": rows, "reference_point": shared["reference_point"],
              "normalisation": shared["normalisation"], "maximise": True, "reference_method": reference}
    output_dir = Path(output_dir)
    io.write_json(output_dir / "compare.json", result)
    with io.atomic_path(output_dir / "compare.csv") as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    plot_fronts({label: np.array([p["mean_rewards"] for p in run["preferences"]], dtype=np.float64)
                 for label, run in zip(labels, runs)}, objectives, output_dir / "compare.png",
                "Held-out fronts, one shared reference point")
    io.write_text(output_dir / "compare.md", format_comparison(result) + "\n\n![fronts](compare.png)\n")
    return result


def _labels(runs: list[dict]) -> list[str]:
    """The method name, qualified by the run folder (then its full path) where that is needed to tell runs apart."""
    methods = [run["method"] for run in runs]
    labels = [m if methods.count(m) == 1 else f"{m} ({Path(run['run_dir']).name})" for m, run in zip(methods, runs)]
    return [label if labels.count(label) == 1 else f"{run['method']} ({run['run_dir']})"
            for label, run in zip(labels, runs)]


def format_comparison(result: dict) -> str:
    header = ["method", "models", "hypervolume", "collapse", "wall s"]
    with_ratios = result["reference_method"] is not None
    if with_ratios:
        header += ["HV / ParetoHqD", "time / ParetoHqD"]
    rows = []
    for row in result["runs"]:
        cells = [row["label"], str(row["models"]), f"{row['hypervolume']:.4f}", f"{row['collapse_rate']:.1%}",
                 f"{row['wall_seconds']:.0f}"]
        if with_ratios:
            ratio = row["hypervolume_vs_paretohqd"]
            cells += ["-" if ratio is None else f"{ratio:.3f}", f"{row['time_vs_paretohqd']:.3f}"]
        rows.append(cells)
    norm = result["normalisation"]
    return format_table(header, rows, [
        f"shared normalisation: min-max over all compared points, low {format_vector(norm['low'])}, high "
        f"{format_vector(norm['high'])}; reference point {format_vector(result['reference_point']['raw'])} raw = "
        f"{format_vector(result['reference_point']['normalised'])} normalised"])
