"""ParetoHqD's selection units: the pool of first Pareto layers, then one unit per preference (the k pool samples
nearest its ray), a summary and a plot. One unit per preference means a new or moved preference selects, trains and
generates alone; the others are kept. Stage 2 declares the same units over its generated pool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..errors import UserError
from ..pareto import CandidatePool, candidate_pool, default_min_pool, select_from_pool
from ..plots import plot_selection
from ..tables import format_table, format_vector
from .units import Unit, UnitContext


def selection_units(prefix: str, folder: str, stage: str, command: str, scores: Unit, names: list[str],
                    weights: np.ndarray, k: int, min_pool: int | None, normalisation: str, quantiles: list[float],
                    metric: str, plot: bool, cap_to_pool: bool = False) -> tuple[list[Unit], list[Unit]]:
    """(one selection unit per preference, in grid order; every unit declared, summary and plot included)."""
    pool = Unit(name=f"{prefix}/pool", kind="select_pool", stage=stage, command=command, action=run_pool,
                outputs=(f"{folder}/pool.json",), upstream={"scores": scores},
                settings={"objectives": names, "normalisation": normalisation,
                          "quantiles": list(quantiles) if normalisation == "robust" else None,
                          "min_pool": min_pool or default_min_pool(len(names)), "cap_to_pool": cap_to_pool})
    prefs = [ray_unit(pool, f"pref_{i:02d}", w, k, metric, cap_to_pool) for i, w in enumerate(weights)]
    roles = {f"pref:{i:02d}": unit for i, unit in enumerate(prefs)}
    summary = Unit(name=f"{prefix}/summary", kind="select_summary", stage=stage, command=command,
                   action=run_summary, outputs=(f"{folder}/summary.json",),
                   upstream={"pool": pool, "scores": scores, **roles}, settings={"objectives": names})
    declared = [pool, *prefs, summary]
    if plot:
        declared.append(Unit(name=f"{prefix}/plot", kind="select_plot", stage=stage, command=command,
                             action=run_plot, outputs=(f"{folder}/selection.png",),
                             upstream={"pool": pool, "scores": scores, **roles}, settings={"objectives": names}))
    return prefs, declared


def ray_unit(pool: Unit, label: str, weights, k: int, metric: str, cap_to_pool: bool = False) -> Unit:
    """The ``k`` samples of ``pool``'s candidates nearest one preference's ray, into ``{folder}/{label}.json``
    beside the pool's file."""
    prefix, folder = pool.name.removesuffix("/pool"), pool.outputs[0].rsplit("/", 1)[0]
    return Unit(name=f"{prefix}/{label}", kind="select_ray", stage=pool.stage, command=pool.command, action=run_ray,
                outputs=(f"{folder}/{label}.json",), upstream={"pool": pool, "scores": pool.upstream["scores"]},
                settings={"objectives": pool.settings["objectives"], "weights": [float(x) for x in weights], "k": k,
                          "metric": metric, "cap_to_pool": cap_to_pool})


def _points(ctx: UnitContext) -> tuple[pd.DataFrame, np.ndarray]:
    """The ids and score columns only: the text columns are most of a large table and selection reads none."""
    import pyarrow.parquet as pq

    names = ctx.settings["objectives"]
    missing = [name for name in names if name not in pq.read_schema(ctx.input("scores")).names]
    if missing:
        raise UserError(f"scores.parquet has no column for objective '{missing[0]}': rerun 'paretohqd score'")
    scores = pd.read_parquet(ctx.input("scores"), columns=list(dict.fromkeys(["id", *names])))
    return scores, scores[names].to_numpy(dtype=np.float64)


def run_pool(ctx: UnitContext) -> None:
    _, points = _points(ctx)
    s = ctx.settings
    min_pool = min(s["min_pool"], len(points)) if s["cap_to_pool"] else s["min_pool"]
    try:
        pool = candidate_pool(points, min_pool=min_pool, normalisation=s["normalisation"],
                              quantiles=tuple(s["quantiles"] or (0.001, 0.999)), maximise=True, names=s["objectives"])
    except ValueError as exc:
        raise UserError(f"select: {exc}") from None
    io.write_json(ctx.output, pool.to_dict())


def run_ray(ctx: UnitContext) -> None:
    scores, points = _points(ctx)
    pool = CandidatePool.from_dict(io.read_json(ctx.input("pool")))
    s = ctx.settings
    k = min(s["k"], len(points)) if s["cap_to_pool"] else s["k"]
    try:
        chosen = select_from_pool(points, pool, [s["weights"]], k=k, metric=s["metric"], names=s["objectives"])[0]
    except ValueError as exc:
        raise UserError(f"select: {exc}") from None
    rows = np.asarray(chosen.indices)
    entry = {**chosen.to_dict(), "objectives": s["objectives"], "k": int(len(rows)), "metric": s["metric"],
             "sample_ids": scores["id"].to_numpy()[rows].tolist(), "rows": rows.tolist(),
             "mean_raw_scores": points[rows].mean(axis=0).tolist()}
    entry.pop("indices")
    io.write_json(ctx.output, entry)


def _preference_entries(ctx: UnitContext) -> list[tuple[str, dict]]:
    roles = sorted(role for role in ctx.inputs if role.startswith("pref:"))
    return [(ctx.input(role).name, io.read_json(ctx.input(role))) for role in roles]


def run_summary(ctx: UnitContext) -> None:
    _, points = _points(ctx)
    pool = io.read_json(ctx.input("pool"))
    entries = _preference_entries(ctx)
    summary = {"objectives": ctx.settings["objectives"], "num_samples": int(len(points)),
               **{key: pool[key] for key in ("pool_size", "num_layers", "layer_sizes", "min_pool", "maximise",
                                             "normalisation")},
               "k": entries[0][1]["k"] if entries else None,
               "metric": entries[0][1]["metric"] if entries else None,
               "num_preferences": len(entries), "files": [name for name, _ in entries]}
    io.write_json(ctx.output, summary)
    ctx.log(f"{ctx.name.rsplit('/', 1)[0]}: {len(entries)} preferences x k={summary['k']} from a pool of "
            f"{pool['pool_size']} samples in the first {pool['num_layers']} Pareto layers")


def run_plot(ctx: UnitContext) -> None:
    _, points = _points(ctx)
    pool = CandidatePool.from_dict(io.read_json(ctx.input("pool")))
    chosen = [{**entry, "label": f"w={format_vector(entry['weights'], '.2g')}"}
              for _, entry in _preference_entries(ctx)]
    plot_selection(pool.stats.apply(points), pool.indices, pool.num_layers, chosen, ctx.settings["objectives"],
                   ctx.output)


def format_selection_table(folder: Path) -> str:
    """Per preference, its weights and the mean raw rewards of its selected samples."""
    summary = io.read_json(Path(folder) / "summary.json")
    names = summary["objectives"]
    rows = []
    for index, name in enumerate(summary["files"]):
        entry = io.read_json(Path(folder) / name)
        rows.append([str(index), format_vector(entry["weights"], ".2f")]
                    + [f"{v:.3f}" for v in entry["mean_raw_scores"]] + [f"{np.mean(entry['layers']):.2f}"])
    footer = [f"pool: {summary['pool_size']} of {summary['num_samples']} samples in the first "
              f"{summary['num_layers']} Pareto layers; plot: {Path(folder) / 'selection.png'}"]
    return format_table(["pref", "weights"] + [f"mean {name}" for name in names] + ["mean layer"], rows, footer)
