"""The score stage: every training sample gets one raw reward per objective.

Units: per objective a batched-vs-single self-check, then one unit per shard of ``score.shard_size`` samples, named
by its content key (the objective's identity and the content of its rows) in a cache folder that several runs may
share; then ``score`` merges them into ``scores/scores.parquet`` and ``scores/stats.json``. An edited row rescores
its shard only; a new shard size, batch size or device rescores nothing that is already merged.

Generated samples (stage 2, RiC's online rounds, evaluation) are scored by one unit each through
:func:`score_generations`, with the same content-addressed shard cache inside.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..config import ObjectiveConfig, ScoreConfig
from ..data import fingerprint
from ..rewards import check_objective, objective_identity
from ..rewards.scoring import (
    check_batch_invariance,
    consistency_tolerance,
    length_spread,
    load_scores,
    save_scores,
    score_frame,
    score_rows,
    score_statistics,
    text_lengths,
)
from .built_objectives import built_objective
from .generate import read_generations
from .inputs import Inputs
from .units import Unit, UnitContext


def scoring_settings(objectives: list[ObjectiveConfig], score: ScoreConfig) -> tuple[dict, dict]:
    """(what a scoring unit's results depend on: each objective's name and identity; how to compute them: the
    full objective configs, shard size, batching), computed once per plan."""
    return ({"objectives": [{"name": o.name, "identity": objective_identity(o)} for o in objectives]},
            {"configs": [dataclasses.asdict(o) for o in objectives], "shard_size": score.shard_size,
             "sort_by_length": score.sort_by_length})


def score_units(scoring: tuple[dict, dict], score: ScoreConfig, inputs: Inputs, progress: bool) -> Unit:
    """The merged-scores unit, with its self-checks and shards as dependencies."""
    cache = str(Path(score.cache_dir).resolve()) if score.cache_dir else "scores/cache"
    samples = inputs.samples
    shards = [(start, min(start + score.shard_size, len(samples)),
               fingerprint(samples.iloc[start:start + score.shard_size]))
              for start in range(0, len(samples), score.shard_size)]  # once, whatever the number of objectives
    needs: dict[str, Unit] = {}
    for entry, objective in zip(scoring[0]["objectives"], scoring[1]["configs"]):
        name, identity = entry["name"], entry["identity"]
        options = {"objective": objective, "progress": progress}
        check = None
        if score.consistency_check:
            check = Unit(name=f"score/{name}/check", kind="score_check", stage="score", command="score",
                         action=run_check, outputs=(f"{cache}/{name}/check-{{key}}.json",),
                         check=functools.partial(check_objective, objective),
                         settings={"objective": identity, "samples": score.consistency_check,
                                   "tolerance": consistency_tolerance(objective.get("dtype", "float32"),
                                                                      score.consistency_tolerance)},
                         upstream={"samples": inputs.samples_unit}, options=options, content_addressed=True)
            needs[f"check:{name}"] = check
        for shard, (start, stop, content) in enumerate(shards):
            after = {"samples": inputs.samples_unit, **({"check": check} if check else {})}
            needs[f"shard:{name}:{shard:06d}"] = Unit(
                name=f"score/{name}/{shard:06d}", kind="score_shard", stage="score", command="score",
                action=run_shard, outputs=(f"{cache}/{name}/{{key}}.npy",),
                check=functools.partial(check_objective, objective),
                settings={"objective": identity}, data=content, after=after, content_addressed=True,
                options={**options, "rows": [start, stop], "sort_by_length": score.sort_by_length})
    return Unit(name="score", kind="score", stage="score", command="score", action=run_merge,
                outputs=("scores/scores.parquet", "scores/stats.json"), settings=scoring[0],
                upstream={"samples": inputs.samples_unit}, after=needs)


def run_check(ctx: UnitContext) -> None:
    objective = built_objective(ctx.options["objective"])
    # The spread-out samples the check scores, read alone: not the whole table (a million rows of text).
    texts = pd.read_parquet(ctx.input("samples"), columns=["prompt", "response"])
    picks = length_spread(text_lengths(texts), ctx.settings["samples"])
    samples = pd.concat([io.read_parquet_rows(ctx.input("samples"), int(i), int(i) + 1) for i in picks]) \
        if len(picks) else texts
    config = ctx.options["objective"]
    worst = check_batch_invariance(objective, samples, ctx.settings["samples"], config["batch_size"],
                                   ctx.settings["tolerance"], config.get("dtype", "float32"))
    io.write_json(ctx.output, {"samples": ctx.settings["samples"], "max_abs_difference": worst})


def run_shard(ctx: UnitContext) -> None:
    from tqdm.auto import tqdm

    config = ctx.options["objective"]
    start, stop = ctx.options["rows"]
    rows = io.read_parquet_rows(ctx.input("samples"), start, stop)
    # In a multi-process launch every process scores its share of the shard's batches; rank 0 writes the merge.
    with tqdm(total=len(rows), desc=f"score {config['name']} {start}-{stop}", unit="sample", leave=False,
              disable=not ctx.options["progress"] or ctx.rank != 0) as progress:
        scores = score_rows(built_objective(config), rows, config["batch_size"], ctx.options["sort_by_length"],
                            progress, offset=start, share=(ctx.rank, ctx.world_size), gather=ctx.gather)
    if ctx.rank == 0:
        save_scores(ctx.output, scores)


def run_merge(ctx: UnitContext) -> None:
    table = pd.read_parquet(ctx.input("samples"))
    names = [entry["name"] for entry in ctx.settings["objectives"]]
    details: dict = {"data_fingerprint": fingerprint(table), "objectives": {}}
    for entry in ctx.settings["objectives"]:
        shards = sorted(role for role in ctx.inputs if role.startswith(f"shard:{entry['name']}:"))
        table[entry["name"]] = np.concatenate([load_scores(ctx.input(role)) for role in shards])
        check = ctx.inputs.get(f"check:{entry['name']}")
        details["objectives"][entry["name"]] = {
            "identity": entry["identity"], "shards": len(shards),
            "batch_invariance": io.read_json(check[0]) if check else None}
    stats = score_statistics(table, names)
    stats["scoring"] = details
    io.write_parquet(ctx.outputs[0], table)
    io.write_json(ctx.outputs[1], stats)
    ctx.log(f"score: {len(table)} samples x {len(names)} objectives ({', '.join(names)}) -> {ctx.outputs[0]}")


def score_generations(ctx: UnitContext, files: list[tuple[str, Path]], column: str) -> pd.DataFrame:
    """Read generation files, label each sample (``column`` = its file's label, id = ``label:prompt_id``) and
    score them with every objective through the shard cache beside the unit's first output: the one call pattern
    of stage 2, RiC's online rounds and evaluation."""
    frames = []
    for label, path in files:
        frame = read_generations(path)
        frame[column] = label
        frames.append(frame)
    generated = pd.concat(frames, ignore_index=True)
    generated["id"] = generated[column] + ":" + generated["prompt_id"].astype(str)
    configs = ctx.options["configs"]
    return score_frame(generated, [built_objective(c) for c in configs],
                       [o["identity"] for o in ctx.settings["objectives"]], [c["batch_size"] for c in configs],
                       ctx.outputs[0].parent / "cache", ctx.options["shard_size"], ctx.options["sort_by_length"],
                       share=(ctx.rank, ctx.world_size), gather=ctx.gather)


def scoring_unit(name: str, stage: str, folder: str, sources: dict[str, Unit], scoring: tuple[dict, dict],
                 original: Unit | None = None) -> Unit:
    """Score the generation files of ``sources`` (label -> generation unit) into ``{folder}/scores.parquet`` and
    ``stats.json``; each sample's id is ``label:prompt_id`` and its ``source`` the label. ``original``: a merged
    scores unit whose samples join the table (a pool of generated and original samples)."""
    settings, options = scoring
    upstream = {f"source:{i:03d}": unit for i, unit in enumerate(sources.values())}
    if original is not None:
        upstream["original"] = original
    return Unit(name=name, kind="score_generated", stage=stage, command="train", action=run_generated_scoring,
                outputs=(f"{folder}/scores.parquet", f"{folder}/stats.json"), upstream=upstream,
                check=lambda: [check_objective(config) for config in options["configs"]],
                settings={**settings, "labels": list(sources)}, options=options)


def run_generated_scoring(ctx: UnitContext) -> None:
    files = [(label, ctx.input(f"source:{i:03d}")) for i, label in enumerate(ctx.settings["labels"])]
    scored = score_generations(ctx, files, "source")
    if ctx.rank != 0:
        return  # every process scored its share; rank 0 has the whole table and writes it
    generated = len(scored)
    if "original" in ctx.inputs:
        scored = pd.concat([scored, pd.read_parquet(ctx.input("original"))], ignore_index=True)
    io.write_parquet(ctx.outputs[0], scored)
    io.write_json(ctx.outputs[1], score_statistics(scored, [o["name"] for o in ctx.settings["objectives"]]))
    ctx.log(f"{ctx.name}: {generated} generated samples scored")
