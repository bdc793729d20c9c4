"""ParetoHqD (Gu et al., AAAI 2026): preferences as rays, Pareto high-quality data per ray, two-stage SFT.

This module holds the method-specific stage, selection, and the pipeline that strings the stages together.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from .. import io
from ..config import RunConfig
from ..errors import UserError
from ..runs import RunDir
from .stages import run_score, score_hash


def resolve_preferences(config: RunConfig) -> np.ndarray:
    """The configured preference grid as a (P, M) array of weights summing to 1."""
    from ..pareto import preference_grid

    prefs = config.preferences
    m = len(config.objectives)
    grid = prefs.grid
    if grid == "auto":
        grid = "explicit" if prefs.weights else "linear" if m == 2 else "ric" if m == 3 else "das-dennis"
    try:
        if grid == "explicit":
            return preference_grid(prefs.weights, m)
        return preference_grid(grid, m, n_partitions=prefs.n_points - 1 if grid == "linear" else prefs.n_partitions)
    except ValueError as exc:
        raise UserError(f"preferences: {exc}") from None


def select_hash(config: RunConfig) -> str:
    payload = score_hash(config) + config.section_hash("preferences", "select")
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def run_select(config: RunConfig, run: RunDir, scores: pd.DataFrame | None = None, force: bool = False,
               log=print) -> list[dict]:
    """For each preference, the k samples of the first Pareto layers nearest its ray -> selection/pref_<i>.json."""
    from ..pareto import select_for_preferences

    summary_path = run.selection / "summary.json"
    with run.stage("select", select_hash(config), (summary_path,), force=force) as record:
        if record.skipped:
            log(f"select: done already ({summary_path})")
            summary = io.read_json(summary_path)
            return [io.read_json(run.selection / name) for name in summary["files"]]
        if scores is None:
            scores_path = run.scores / "scores.parquet"
            if not scores_path.exists():
                raise UserError(f"no scores in {run.path}: run 'paretohqd score' first")
            scores = pd.read_parquet(scores_path)
        names = config.objective_names
        missing = [name for name in names if name not in scores.columns]
        if missing:
            raise UserError(f"scores.parquet has no column for objective '{missing[0]}': rerun 'paretohqd score'")
        points = scores[names].to_numpy(dtype=np.float64)
        weights = resolve_preferences(config)
        try:
            result = select_for_preferences(points, weights, k=config.select.k, min_pool=config.select.min_pool,
                                            normalisation=config.select.normalisation,
                                            quantiles=tuple(config.select.robust_quantiles),
                                            metric=config.select.metric, maximise=True)
        except ValueError as exc:
            raise UserError(f"select: {exc}") from None
        files, records = [], []
        ids = scores["id"].to_numpy()
        for index, chosen in enumerate(result):
            rows = np.asarray(chosen.indices)
            entry = {
                "preference": index,
                "weights": np.asarray(chosen.weights).tolist(),
                "direction": np.asarray(chosen.direction).tolist(),
                "objectives": names,
                "k": int(len(rows)),
                "sample_ids": ids[rows].tolist(),
                "rows": rows.tolist(),
                "distances": np.asarray(chosen.distances).tolist(),
                "layers": np.asarray(chosen.layers).tolist(),
                "mean_raw_scores": points[rows].mean(axis=0).tolist(),
            }
            name = f"pref_{index:02d}.json"
            io.write_json(run.selection / name, entry)
            files.append(name)
            records.append(entry)
        summary = {"objectives": names, "num_samples": int(len(points)), **result.summary(), "files": files}
        if config.select.plot:
            from ..plots import plot_selection

            plot_selection(points, result, names, run.selection / "selection.png")
            summary["plot"] = "selection.png"
        io.write_json(summary_path, summary)
        log(f"select: {len(files)} preferences x k={config.select.k} from a pool of {summary['pool_size']} "
            f"samples in the first {summary['num_layers']} Pareto layers -> {run.selection}")
        return records


def run_pipeline(config: RunConfig, run: RunDir, log=print) -> None:
    """Every stage of ParetoHqD that exists so far, in order; finished stages are skipped."""
    scores = run_score(config, run, log=log)
    run_select(config, run, scores=scores, log=log)


def format_selection_table(run: RunDir) -> str:
    """A plain-text table: per preference, its weights and the mean raw rewards of its selected samples."""
    summary = io.read_json(run.selection / "summary.json")
    names = summary["objectives"]
    header = ["pref", "weights"] + [f"mean {name}" for name in names] + ["mean layer"]
    rows = []
    for name in summary["files"]:
        entry = io.read_json(run.selection / name)
        rows.append([str(entry["preference"]), "(" + ", ".join(f"{w:.2f}" for w in entry["weights"]) + ")"]
                    + [f"{v:.3f}" for v in entry["mean_raw_scores"]] + [f"{np.mean(entry['layers']):.2f}"])
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in [header] + rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append(f"pool: {summary['pool_size']} of {summary['num_samples']} samples in the first "
                 f"{summary['num_layers']} Pareto layers; plot: {run.selection / 'selection.png'}")
    return "\n".join(lines)
