"""The SFT baseline (METHOD.md section 4): one model fine-tuned on the preferred responses, one point on the front.

Preference-pair data (HH-RLHF) trains on the chosen replies; data without a ``label`` column trains on every
sample. It goes through the same scoring, generation and evaluation stages as ParetoHqD, so their numbers compare.
"""

from __future__ import annotations

import sys

import pandas as pd

from ..config import RunConfig
from ..errors import UserError
from ..runs import RunDir
from .stages import chain_hash, evaluate_models, generate_models, run_method, score_hash

METHOD = "SFT"


def train_hash(config: RunConfig) -> str:
    return chain_hash(score_hash(config), config.section_hash("model", "train"), str(config.seed), METHOD)


def model_path(run: RunDir):
    return run.path / "models" / "sft" / "stage1"


def training_samples(scores: pd.DataFrame) -> pd.DataFrame:
    samples = scores[scores["label"] == "chosen"] if "label" in scores.columns else scores
    if samples.empty:
        raise UserError("the SFT baseline found no chosen responses to train on")
    return samples[["id", "prompt", "response"]].reset_index(drop=True)


def model_card(config: RunConfig, count: int):
    from ..train.sft import ModelCard

    return ModelCard("SFT baseline", ["sft-baseline"],
                     [f"objectives it is evaluated on: {', '.join(config.objective_names)}",
                      f"training data: {count} preferred responses (no preference conditioning: one model, one point)"])


def run_train(config: RunConfig, run: RunDir, log=print) -> None:
    from ..train import train_model
    from ..train.sft import is_complete

    unit_hash = train_hash(config)
    target = model_path(run)
    with run.stage("train_sft", unit_hash, (target / ".complete",)) as record:
        if record.skipped and is_complete(target, unit_hash):
            log("train_sft: done already")
            return
        samples = training_samples(pd.read_parquet(run.scores / "scores.parquet"))
        train_model(samples, target, config.model, config.train, "stage1", seed=config.seed, unit_hash=unit_hash,
                    report_to=config.report_to, card=model_card(config, len(samples)), log=log)


def run_generate(config: RunConfig, run: RunDir, log=print) -> list[dict]:
    return generate_models(config, run, [{"name": "sft", "weights": None, "path": model_path(run)}],
                           train_hash(config), log=log)


def run_evaluate_stage(config: RunConfig, run: RunDir, log=print) -> dict:
    entries = run_generate(config, run, log=lambda *_: None)
    return evaluate_models(config, run, entries, METHOD, train_hash(config), log=log)


def run_pipeline(config: RunConfig, run: RunDir, log=print) -> dict:
    return run_method(config, run, sys.modules[__name__], log=log)
