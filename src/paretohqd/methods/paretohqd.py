"""ParetoHqD (Gu et al., AAAI 2026): preferences as rays, Pareto high-quality data per ray, two-stage SFT.

This module holds the method-specific stage, selection, and the pipeline that strings the stages together.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..config import RunConfig
from ..errors import UserError
from ..runs import RunDir
from .stages import (chain_hash, check_objectives_score_text, evaluate_models, generate_models, generate_unit,
                     load_test_prompts, run_score, score_hash, unique_prompts)


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
        records = write_selection(run.selection, result, scores, points, names, plot=config.select.plot)
        summary = io.read_json(summary_path)
        log(f"select: {len(records)} preferences x k={config.select.k} from a pool of {summary['pool_size']} "
            f"samples in the first {summary['num_layers']} Pareto layers -> {run.selection}")
        return records


def write_selection(folder: Path, result, scores: pd.DataFrame, points: np.ndarray, names: list[str],
                    plot: bool = True) -> list[dict]:
    """pref_<i>.json per preference (weights, direction, sample ids and rows, distances, layers), summary.json
    last (its presence marks the selection complete), and the selection plot."""
    records, files = [], []
    for stale in folder.glob("pref_*.json"):  # a previous selection with more preferences
        stale.unlink()
    ids = scores["id"].to_numpy()
    for index, chosen in enumerate(result):
        rows = np.asarray(chosen.indices)
        entry = {"preference": index, **chosen.to_dict(), "objectives": names, "k": int(len(rows)),
                 "sample_ids": ids[rows].tolist(), "rows": rows.tolist(),
                 "mean_raw_scores": points[rows].mean(axis=0).tolist()}
        entry.pop("indices")
        name = f"pref_{index:02d}.json"
        io.write_json(folder / name, entry)
        files.append(name)
        records.append(entry)
    summary = {"objectives": names, "num_samples": int(len(points)), **result.summary(), "files": files}
    if plot:
        from ..plots import plot_selection

        plot_selection(points, result, names, folder / "selection.png")
        summary["plot"] = "selection.png"
    io.write_json(folder / "summary.json", summary)
    return records


def run_pipeline(config: RunConfig, run: RunDir, log=print) -> dict:
    """Every stage of ParetoHqD in order; finished stages and units are skipped, so a rerun resumes."""
    # Problems that would otherwise surface after hours of training fail now.
    check_objectives_score_text(config)
    resolve_preferences(config)
    load_test_prompts(config)
    scores = run_score(config, run, log=log)
    run_select(config, run, scores=scores, log=log)
    run_train_stage1(config, run, log=log)
    if config.stage2.enabled:
        run_stage2(config, run, log=log)
    run_generate(config, run, log=log)
    return run_evaluate_stage(config, run, log=log)


# ---------------------------------------------------------------------------------------------------------------
# Stage 1 and stage 2 training


def model_dir(run: RunDir, preference: int, stage: str) -> Path:
    return run.path / "models" / f"pref_{preference:02d}" / stage


def train_hash(config: RunConfig) -> str:
    return chain_hash(select_hash(config), config.section_hash("model", "train"), str(config.seed))


def stage2_hash(config: RunConfig) -> str:
    return chain_hash(train_hash(config), config.section_hash("stage2"))


def final_stage(config: RunConfig) -> tuple[str, str]:
    """(stage name, settings hash) of the models that are evaluated."""
    return ("stage2", stage2_hash(config)) if config.stage2.enabled else ("stage1", train_hash(config))


def _selected_samples(scores: pd.DataFrame, entry: dict) -> pd.DataFrame:
    return scores.iloc[entry["rows"]][["id", "prompt", "response"]].reset_index(drop=True)


def model_card(config: RunConfig, entry: dict, stage: str, selection_note: str):
    from ..train.sft import ModelCard

    names = config.objective_names
    return ModelCard(
        f"ParetoHqD preference model {entry['preference']} ({stage})", ["multi-objective-alignment", "sft"],
        [f"objectives (maximised): {', '.join(names)}",
         "preference weights: " + ", ".join(f"{n} {w:.3g}" for n, w in zip(names, entry["weights"])),
         "direction in normalised reward space (from the ideal point): "
         f"({', '.join(f'{d:.4f}' for d in entry['direction'])})",
         f"training data: {selection_note}: {entry['k']} samples, mean distance to the ray "
         f"{np.mean(entry['distances']):.4f}, mean Pareto layer {np.mean(entry['layers']):.2f}, mean raw rewards "
         f"({', '.join(f'{v:.3f}' for v in entry['mean_raw_scores'])})",
         "method: ParetoHqD (Gu et al., AAAI 2026, arXiv 2504.16628)"])


def _train_preferences(config: RunConfig, run: RunDir, stage: str, unit_hash: str, scores: pd.DataFrame,
                       entries: list[dict], selection_note: str, log) -> None:
    from ..train import train_model
    from ..train.sft import is_complete

    for entry in entries:
        index = entry["preference"]
        target = model_dir(run, index, stage)
        if is_complete(target, unit_hash):
            continue
        init_from = model_dir(run, index, "stage1") if stage == "stage2" else None
        train_model(_selected_samples(scores, entry), target, config.model, config.train, stage,
                    seed=config.seed + index, unit_hash=unit_hash, init_from=init_from,
                    report_to=config.report_to, card=model_card(config, entry, stage, selection_note),
                    log=log)


def _read_selection(folder: Path) -> list[dict]:
    summary = io.read_json(folder / "summary.json")
    return [io.read_json(folder / name) for name in summary["files"]]


def run_train_stage1(config: RunConfig, run: RunDir, log=print) -> None:
    """Stage 1: each preference's model fine-tuned from the base on its selected samples."""
    from ..train.sft import is_complete

    unit_hash = train_hash(config)
    entries = _read_selection(run.selection)
    outputs = tuple(model_dir(run, e["preference"], "stage1") / ".complete" for e in entries)
    with run.stage("train_stage1", unit_hash, outputs) as record:
        if record.skipped and all(is_complete(p.parent, unit_hash) for p in outputs):
            log("train_stage1: done already")
            return
        scores = pd.read_parquet(run.scores / "scores.parquet")
        _train_preferences(config, run, "stage1", unit_hash, scores, entries,
                           "ParetoHqD selection from the offline dataset", log)


def representative_indices(weights: np.ndarray) -> list[int]:
    """The grid preferences nearest the M one-hot and the balanced preference (the stage-2 generators)."""
    from ..pareto import representative_preferences

    targets = representative_preferences(weights.shape[1])
    distance = np.linalg.norm(weights[None, :, :] - targets[:, None, :], axis=2)
    return sorted(set(int(i) for i in distance.argmin(axis=1)))


def run_stage2(config: RunConfig, run: RunDir, log=print) -> None:
    """Stage 2: representative stage-1 models answer training prompts; the new samples are scored, the layers
    rebuilt, k/2 selected per preference, and each preference's stage-1 model trained further."""
    check_objectives_score_text(config)
    from ..pareto import default_min_pool, select_for_preferences
    from ..rewards import build_objectives
    from ..rewards.scoring import score_samples, score_statistics
    from ..train.sft import is_complete, load_trained

    unit_hash = stage2_hash(config)
    entries = _read_selection(run.selection)
    folder = run.path / "stage2"
    outputs = tuple(model_dir(run, e["preference"], "stage2") / ".complete" for e in entries)
    with run.stage("stage2", unit_hash, outputs) as record:
        if record.skipped and all(is_complete(p.parent, unit_hash) for p in outputs):
            log("stage2: done already")
            return
        weights = np.array([e["weights"] for e in entries])
        samples = pd.read_parquet(run.scores / "scores.parquet")
        prompts = unique_prompts(samples, config.objective_names)
        rng = np.random.default_rng(config.seed)
        count = min(config.stage2.num_prompts, len(prompts))
        prompts = prompts.iloc[np.sort(rng.choice(len(prompts), size=count, replace=False))].reset_index(drop=True)
        frames = []
        for index in representative_indices(weights):
            frames.append(generate_unit(
                folder / "generations" / f"pref_{index:02d}.jsonl",
                functools.partial(load_trained, model_dir(run, index, "stage1"), config.model),
                prompts, config, config.stage2.sampling, seed=config.seed + 1000 + index, unit_hash=unit_hash,
                extra={"model": f"pref_{index:02d}/stage1"}, log=log))
        generated = pd.concat(frames, ignore_index=True)
        generated["id"] = generated["model"] + ":" + generated["prompt_id"]
        objectives = build_objectives(config.objectives)
        scored, _ = score_samples(generated, objectives, [c.batch_size for c in config.objectives],
                                  folder / "cache", config.score.shard_size, config.score.sort_by_length,
                                  consistency_check=0, show_progress=False)
        if config.stage2.pool == "generated+original":
            scored = pd.concat([scored, samples], ignore_index=True)
        io.write_parquet(folder / "scores.parquet", scored)
        stats = score_statistics(scored, config.objective_names, tuple(config.select.robust_quantiles))
        io.write_json(folder / "stats.json", stats)
        points = scored[config.objective_names].to_numpy(dtype=np.float64)
        k = config.stage2.k or max(1, config.select.k // 2)
        min_pool = min(config.stage2.min_pool or config.select.min_pool or default_min_pool(points.shape[1]),
                       len(points))
        try:
            result = select_for_preferences(points, weights, k=min(k, len(points)), min_pool=min_pool,
                                            normalisation=config.select.normalisation,
                                            quantiles=tuple(config.select.robust_quantiles),
                                            metric=config.select.metric, maximise=True)
        except ValueError as exc:
            raise UserError(f"stage 2 selection: {exc}") from None
        selection = write_selection(folder / "selection", result, scored, points, config.objective_names,
                                    plot=config.select.plot)
        log(f"stage2: {len(scored)} generated samples, pool {result.summary()['pool_size']}, k={k} per preference")
        _train_preferences(config, run, "stage2", unit_hash, scored, selection,
                           "ParetoHqD selection from data generated by the representative stage-1 models", log)


# ---------------------------------------------------------------------------------------------------------------
# Held-out generation and evaluation


def run_generate(config: RunConfig, run: RunDir, log=print) -> list[dict]:
    """Every preference's final model (and the base model) answers the held-out prompts -> generations/."""
    stage, model_hash = final_stage(config)
    models = [{"name": f"pref_{e['preference']:02d}", "weights": e["weights"],
               "path": model_dir(run, e["preference"], stage)} for e in _read_selection(run.selection)]
    return generate_models(config, run, models, model_hash, log=log)


def run_evaluate_stage(config: RunConfig, run: RunDir, log=print) -> dict:
    entries = run_generate(config, run, log=lambda *_: None)
    return evaluate_models(config, run, entries, "ParetoHqD", final_stage(config)[1], log=log)


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
