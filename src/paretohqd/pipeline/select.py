"""ParetoHqD's selection units: the pool of first Pareto layers, then one unit per preference (the k pool samples
nearest its ray), a summary and a plot. One unit per preference means a new or moved preference selects, trains and
generates alone; the others are kept. Stage 2 declares the same units over its generated pool."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import io
from ..errors import UserError
from ..pareto import CandidatePool, candidate_pool, default_k, default_min_pool, select_from_pool
from ..pareto.select import POOL_FRACTION, POOL_PER_K
from ..plots import plot_selection
from ..tables import format_table, format_vector
from .units import Unit, UnitContext

if TYPE_CHECKING:
    from ..evaluate.html import SelectionView


def k_rule(fraction: float, minimum: int, divisor: int = 1) -> dict:
    """k by :func:`~paretohqd.pareto.default_k` on the number of samples the unit reads, divided by ``divisor``
    (stage 2's half)."""
    return {"fraction": float(fraction), "min": int(minimum), "divisor": int(divisor)}


def resolve_k(k: int | None, rule: dict | None, n_samples: int) -> int:
    """``k`` as given, or as ``rule`` (:func:`k_rule`) gives it for ``n_samples``."""
    if k is not None:
        return int(k)
    return max(1, default_k(n_samples, rule["fraction"], rule["min"]) // rule["divisor"])


def _k_settings(k: int | None, rule: dict | None) -> dict:
    # A given k keeps the settings (and so the keys) runs had before the rule existed.
    if k is None and rule is None:
        raise ValueError("a selection needs k or a rule for it")
    return {"k": int(k)} if k is not None else {"k": None, "k_rule": rule}


def selection_units(prefix: str, folder: str, stage: str, command: str, scores: Unit, names: list[str],
                    weights: np.ndarray, k: int | None, min_pool: int | None, normalisation: str,
                    quantiles: list[float], metric: str, plot: bool, cap_to_pool: bool = False,
                    pool_rule: tuple[float, float] = (POOL_FRACTION, POOL_PER_K),
                    k_from: dict | None = None) -> tuple[list[Unit], list[Unit]]:
    """(one selection unit per preference, in grid order; every unit declared, summary and plot included).
    ``k`` None: k by the rule ``k_from`` (:func:`k_rule`); ``min_pool`` None: P_min by ``pool_rule`` = (share of the
    scored samples, multiple of k). Both are decided when the number of samples is known."""
    ks = _k_settings(k, k_from)
    rule = None if min_pool else {"fraction": float(pool_rule[0]), "per_k": float(pool_rule[1]), **ks}
    pool = Unit(name=f"{prefix}/pool", kind="select_pool", stage=stage, command=command, action=run_pool,
                outputs=(f"{folder}/pool.json",), upstream={"scores": scores},
                settings={"objectives": names, "normalisation": normalisation,
                          "quantiles": list(quantiles) if normalisation == "robust" else None,
                          "min_pool": min_pool or None, "min_pool_rule": rule, "cap_to_pool": cap_to_pool})
    prefs = [ray_unit(pool, f"pref_{i:02d}", w, k, metric, cap_to_pool, k_from) for i, w in enumerate(weights)]
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


def ray_unit(pool: Unit, label: str, weights, k: int | None, metric: str, cap_to_pool: bool = False,
             k_from: dict | None = None) -> Unit:
    """The ``k`` samples (``None``: as the rule ``k_from`` gives) of ``pool``'s candidates nearest one preference's
    ray, into ``{folder}/{label}.json`` beside the pool's file."""
    prefix, folder = pool.name.removesuffix("/pool"), pool.outputs[0].rsplit("/", 1)[0]
    return Unit(name=f"{prefix}/{label}", kind="select_ray", stage=pool.stage, command=pool.command, action=run_ray,
                outputs=(f"{folder}/{label}.json",), upstream={"pool": pool, "scores": pool.upstream["scores"]},
                settings={"objectives": pool.settings["objectives"], "weights": [float(x) for x in weights],
                          **_k_settings(k, k_from), "metric": metric, "cap_to_pool": cap_to_pool})


def _points(ctx: UnitContext) -> tuple[pd.DataFrame, np.ndarray]:
    return read_points(ctx.input("scores"), ctx.settings["objectives"])


def read_points(path: Path, names: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """The ids and score columns of a scores parquet only: the text columns are most of a large table and
    selection reads none."""
    import pyarrow.parquet as pq

    missing = [name for name in names if name not in pq.read_schema(path).names]
    if missing:
        raise UserError(f"scores.parquet has no column for objective '{missing[0]}': rerun 'paretohqd score'")
    scores = pd.read_parquet(path, columns=list(dict.fromkeys(["id", *names])))
    return scores, scores[names].to_numpy(dtype=np.float64)


def run_pool(ctx: UnitContext) -> None:
    _, points = _points(ctx)
    s = ctx.settings
    rule = s["min_pool_rule"]
    if rule is not None:
        k = resolve_k(rule["k"], rule.get("k_rule"), len(points))
        min_pool = default_min_pool(len(points), k, rule["fraction"], rule["per_k"])
    else:
        min_pool = min(s["min_pool"], len(points)) if s["cap_to_pool"] else s["min_pool"]
    try:
        pool = candidate_pool(points, min_pool=min_pool, normalisation=s["normalisation"],
                              quantiles=tuple(s["quantiles"] or (0.001, 0.999)), maximise=True, names=s["objectives"])
    except ValueError as exc:
        raise UserError(f"select: {exc}") from None
    io.write_json(ctx.output, {**pool.to_dict(), "min_pool_rule": rule})


def run_ray(ctx: UnitContext) -> None:
    scores, points = _points(ctx)
    pool = CandidatePool.from_dict(io.read_json(ctx.input("pool")))
    s = ctx.settings
    k = resolve_k(s["k"], s.get("k_rule"), len(points))
    k = min(k, len(points)) if s["cap_to_pool"] else k
    try:
        chosen = select_from_pool(points, pool, [s["weights"]], k=k, metric=s["metric"], names=s["objectives"])[0]
    except ValueError as exc:
        raise UserError(f"select: {exc}") from None
    rows = np.asarray(chosen.indices)
    entry = {**chosen.to_dict(), "objectives": s["objectives"], "k": len(rows), "metric": s["metric"],
             "sample_ids": scores["id"].to_numpy()[rows].tolist(), "rows": rows.tolist(),
             "mean_raw_scores": points[rows].mean(axis=0).tolist(), "mean_layer": float(np.mean(chosen.layers))}
    entry.pop("indices")
    io.write_json(ctx.output, entry)


def _preference_entries(ctx: UnitContext) -> list[tuple[str, dict]]:
    return preference_entries(ctx.inputs)


def preference_entries(inputs: Mapping[str, list[Path]], prefix: str = "") -> list[tuple[str, dict]]:
    """(file name, record) of each preference's choice among ``inputs`` (roles ``{prefix}pref:NN``), in grid
    order."""
    roles = sorted(role for role in inputs if role.startswith(f"{prefix}pref:"))
    return [(inputs[role][0].name, io.read_json(inputs[role][0])) for role in roles]


def run_summary(ctx: UnitContext) -> None:
    _, points = _points(ctx)
    pool = io.read_json(ctx.input("pool"))
    entries = _preference_entries(ctx)
    layers = [float(np.mean(entry["layers"])) for _, entry in entries]
    summary = {"objectives": ctx.settings["objectives"], "num_samples": len(points),
               **{key: pool[key] for key in ("pool_size", "num_layers", "layer_sizes", "min_pool", "maximise",
                                             "normalisation")},
               "min_pool_rule": pool.get("min_pool_rule"),
               "k": entries[0][1]["k"] if entries else None,
               "metric": entries[0][1]["metric"] if entries else None,
               "num_preferences": len(entries), "files": [name for name, _ in entries],
               "mean_layers": layers}
    io.write_json(ctx.output, summary)
    ctx.log(f"{ctx.name.rsplit('/', 1)[0]}: {len(entries)} preferences x k={summary['k']} from a pool of "
            f"{pool['pool_size']} of {len(points)} samples ({pool['pool_size'] / len(points):.1%}) in the first "
            f"{pool['num_layers']} Pareto layers; mean layer of the selections "
            f"{min(layers, default=0):.2f}-{max(layers, default=0):.2f} (0 = the front)")


def run_plot(ctx: UnitContext) -> None:
    _, points = _points(ctx)
    z, pool, chosen = drawn_selection(points, io.read_json(ctx.input("pool")), _preference_entries(ctx))
    plot_selection(z, pool.indices, pool.num_layers, chosen, ctx.settings["objectives"], ctx.output)


def drawn_selection(points: np.ndarray, pool_record: dict, entries: list[tuple[str, dict]]
                    ) -> tuple[np.ndarray, CandidatePool, list[dict]]:
    """What a selection plot draws (selection.png, the HTML report): the scores in the pool's normalised units,
    the pool, and each preference's record labelled by its weights."""
    pool = CandidatePool.from_dict(pool_record)
    chosen = [{**entry, "label": f"w={format_vector(entry['weights'], '.2g')}"} for _, entry in entries]
    return pool.stats.apply(points), pool, chosen


def selection_views(inputs: Mapping[str, list[Path]], names: list[str]) -> list[SelectionView]:
    """For the HTML report (``evaluate.html.SelectionView``), each selection stage among ``inputs``, the report's
    roles ``<summary unit>:<role>`` (``select/summary:pool``, ``stage2/select/summary:pref:03``, ...; see
    ``pipeline.plan.report_inputs``), in the order the plan lists them; a method that selects nothing: the scored
    offline data (role ``scores``) alone, in raw units; neither: nothing."""
    from ..evaluate.html import SelectionView

    summaries = list(dict.fromkeys(role.split(":", 1)[0] for role in inputs if role.endswith("/summary:pool")))
    views = []
    for summary in summaries:
        scores, points = read_points(inputs[f"{summary}:scores"][0], names)
        z, pool, chosen = drawn_selection(points, io.read_json(inputs[f"{summary}:pool"][0]),
                                          preference_entries(inputs, f"{summary}:"))
        views.append(SelectionView(_stage_title(summary.removesuffix("/summary")), names, z, points,
                                   scores["id"].to_numpy(), pool.indices, pool.num_layers, chosen))
    if not views and "scores" in inputs:
        scores, points = read_points(inputs["scores"][0], names)
        views.append(SelectionView("Scored offline data", names, points, points, scores["id"].to_numpy()))
    return views


def _stage_title(prefix: str) -> str:
    """``select`` -> ``Stage-1 selection``, ``stage2/select`` -> ``Stage-2 selection``, another by its name."""
    stage = "stage1" if prefix == "select" else prefix.split("/", 1)[0]
    number = stage.removeprefix("stage")
    return f"Stage-{number} selection" if number.isdigit() else f"{prefix} selection"


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
