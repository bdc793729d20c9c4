"""Stages shared by every method; each reads its inputs from the run directory and writes its outputs atomically."""

from __future__ import annotations

import os
import time

import pandas as pd

from .. import io
from ..config import RunConfig
from ..data import load_data
from ..errors import UserError
from ..runs import RunDir

RESERVED_COLUMNS = ("id", "prompt", "response")


def score_hash(config: RunConfig) -> str:
    return config.section_hash("data", "objectives", "score")


def load_samples(config: RunConfig) -> pd.DataFrame:
    data = config.data
    return load_data(data.source, adapter=data.adapter, fmt=data.format, split=data.split,
                     prompt_column=data.prompt_column, response_column=data.response_column,
                     id_column=data.id_column, max_samples=data.max_samples).samples


def run_score(config: RunConfig, run: RunDir, force: bool = False, log=print) -> pd.DataFrame:
    """Score every sample with every objective -> scores/scores.parquet + scores/stats.json."""
    from ..rewards import build_objectives
    from ..rewards.scoring import score_samples, score_statistics

    scores_path = run.scores / "scores.parquet"
    with run.stage("score", score_hash(config), (scores_path,), force=force) as record:
        if record.skipped:
            log(f"score: done already ({scores_path})")
            return pd.read_parquet(scores_path)
        samples = load_samples(config)
        clash = [c.name for c in config.objectives if c.name in RESERVED_COLUMNS or
                 (c.name in samples.columns and not (c.type == "column" and c.column == c.name))]
        if clash:
            raise UserError(f"objective name '{clash[0]}' is already a column of the data; rename the objective")
        log(f"score: {len(samples)} samples x {len(config.objectives)} objectives "
            f"({', '.join(config.objective_names)})")
        objectives = build_objectives(config.objectives)
        started = time.perf_counter()
        table, details = score_samples(
            samples, objectives, [c.batch_size for c in config.objectives], run.scores / "cache",
            config.score.shard_size, config.score.sort_by_length, config.score.consistency_check,
            config.score.consistency_tolerance, show_progress=config.score.progress and _interactive())
        stats = score_statistics(table, config.objective_names, tuple(config.select.robust_quantiles))
        stats["scoring"] = details
        stats["wall_seconds"] = time.perf_counter() - started
        io.write_parquet(scores_path, table)
        io.write_json(run.scores / "stats.json", stats)
        log(f"score: wrote {scores_path}")
        return table


def _interactive() -> bool:
    return os.environ.get("PARETOHQD_PROGRESS", "1") != "0"
