"""`paretohqd compare`: several runs' fronts on one plot and one table, with one shared reference point.

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

REFERENCE_METHOD = "ParetoHqD"


def read_run(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "eval" / "metrics.json"
    if not path.is_file():
        raise UserError(f"{run_dir} has no eval/metrics.json: finish that run (paretohqd run CONFIG) first")
    metrics = io.read_json(path)
    metrics["run_dir"] = str(run_dir)
    return metrics


def compare_runs(run_dirs: list[str], output_dir: str | Path, reference_point: list[float] | None = None) -> dict:
    from ..pareto import normalised_hypervolume

    if len(run_dirs) < 1:
        raise UserError("compare needs at least one run directory")
    runs = [read_run(d) for d in run_dirs]
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
    _plot(runs, labels, objectives, output_dir / "compare.png")
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
    lines = []
    for row in result["runs"]:
        cells = [row["label"], str(row["models"]), f"{row['hypervolume']:.4f}", f"{row['collapse_rate']:.1%}",
                 f"{row['wall_seconds']:.0f}"]
        if with_ratios:
            ratio = row["hypervolume_vs_paretohqd"]
            cells += ["-" if ratio is None else f"{ratio:.3f}", f"{row['time_vs_paretohqd']:.3f}"]
        lines.append(cells)
    widths = [max(len(r[i]) for r in lines + [header]) for i in range(len(header))]
    table = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in [header] + lines]
    table.insert(1, "  ".join("-" * w for w in widths))
    norm = result["normalisation"]
    table.append(f"shared normalisation: min-max over all compared points, low {_fmt(norm['low'])}, high "
                 f"{_fmt(norm['high'])}; reference point {_fmt(result['reference_point']['raw'])} raw = "
                 f"{_fmt(result['reference_point']['normalised'])} normalised")
    return "\n".join(table)


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def _plot(runs: list[dict], labels: list[str], objectives: list[str], path: Path) -> None:
    from itertools import combinations

    from ..plots import _pyplot

    plt = _pyplot()
    pairs = list(combinations(range(len(objectives)), 2)) or [(0, 0)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.5 * len(pairs), 4.8), squeeze=False)
    markers = "osD^vP*X"
    for ax, (i, j) in zip(axes[0], pairs):
        for n, (label, run) in enumerate(zip(labels, runs)):
            points = np.array([p["mean_rewards"] for p in run["preferences"]])
            order = np.argsort(points[:, i])
            ax.plot(points[order, i], points[order, j], marker=markers[n % len(markers)], label=label, linewidth=1)
        ax.set_xlabel(f"{objectives[i]} (mean raw reward)")
        ax.set_ylabel(f"{objectives[j]} (mean raw reward)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Held-out fronts, one shared reference point")
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
