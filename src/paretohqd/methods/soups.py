"""Rewarded Soups (Rame et al., 2023; METHOD.md section 4): one model per objective, then for each preference w the
w-weighted average of their weights. With LoRA the soup is built exactly as the weighted sum of the adapters' weight
updates (peft's "cat" combination: W0 + sum_i w_i B_i A_i); with full fine-tuning, as the weighted average of the
weights. M trainings; every preference is free at test time.
"""

from __future__ import annotations

import functools
import sys

import numpy as np
import pandas as pd

from ..config import ModelConfig, RunConfig
from ..errors import UserError
from ..runs import RunDir
from .stages import chain_hash, evaluate_models, generate_models, run_method, score_hash

METHOD = "Rewarded Soups"


def train_hash(config: RunConfig) -> str:
    return chain_hash(score_hash(config), config.section_hash("model", "train"), str(config.select.k),
                      str(config.seed), METHOD)


def ingredient_path(run: RunDir, objective: int):
    return run.path / "models" / f"objective_{objective:02d}" / "stage1"


def best_for(scores: pd.DataFrame, name: str, k: int) -> pd.DataFrame:
    """The k samples with the highest raw reward on one objective (ties: earlier row first)."""
    if k > len(scores):
        raise UserError(f"select.k={k} is larger than the {len(scores)} scored samples")
    order = np.argsort(-scores[name].to_numpy(), kind="stable")[:k]
    return scores.iloc[order][["id", "prompt", "response"]].reset_index(drop=True)


def model_card(config: RunConfig, index: int, count: int):
    from ..train.sft import ModelCard

    name = config.objective_names[index]
    return ModelCard(f"Rewarded Soups ingredient: {name}", ["rewarded-soups"],
                     [f"trained on the {count} samples with the highest {name} reward"])


def run_train(config: RunConfig, run: RunDir, log=print) -> None:
    from ..train import train_model
    from ..train.sft import is_complete

    unit_hash = train_hash(config)
    targets = [ingredient_path(run, i) for i in range(len(config.objectives))]
    with run.stage("train_soups", unit_hash, tuple(t / ".complete" for t in targets)) as record:
        if record.skipped and all(is_complete(t, unit_hash) for t in targets):
            log("train_soups: done already")
            return
        scores = pd.read_parquet(run.scores / "scores.parquet")
        for index, (name, target) in enumerate(zip(config.objective_names, targets)):
            if is_complete(target, unit_hash):
                continue
            samples = best_for(scores, name, config.select.k)
            train_model(samples, target, config.model, config.train, "stage1", seed=config.seed + index,
                        unit_hash=unit_hash, report_to=config.report_to,
                        card=model_card(config, index, len(samples)), log=log)


def load_soup(paths: list, weights: list[float], model_config: ModelConfig):
    """(model, tokenizer) of the w-weighted soup of the ingredient models."""
    from transformers import AutoTokenizer, GenerationConfig

    from ..models import load_causal_lm

    tokenizer = AutoTokenizer.from_pretrained(str(paths[0]))
    if (paths[0] / "adapter_config.json").exists():
        from peft import PeftModel

        base, _ = load_causal_lm(model_config.name_or_path, model_config.dtype)
        model = PeftModel.from_pretrained(base, str(paths[0]), adapter_name="ingredient_0")
        for index, path in enumerate(paths[1:], start=1):
            model.load_adapter(str(path), adapter_name=f"ingredient_{index}")
        names = [f"ingredient_{i}" for i in range(len(paths))]
        model.add_weighted_adapter(names, [float(w) for w in weights], adapter_name="soup", combination_type="cat")
        model.set_adapter("soup")
        merged = model.merge_and_unload(adapter_names=["soup"])
    else:
        merged, _ = load_causal_lm(str(paths[0]), model_config.dtype)
        state = {key: value * float(weights[0]) for key, value in merged.state_dict().items()}
        for path, weight in zip(paths[1:], weights[1:]):
            other, _ = load_causal_lm(str(path), model_config.dtype)
            for key, value in other.state_dict().items():
                state[key] += value * float(weight)
        merged.load_state_dict(state)
    merged.generation_config = GenerationConfig.from_pretrained(str(paths[0]))
    return merged, tokenizer


def run_generate(config: RunConfig, run: RunDir, log=print) -> list[dict]:
    from .paretohqd import resolve_preferences

    paths = [ingredient_path(run, i) for i in range(len(config.objectives))]
    models = [{"name": f"pref_{i:02d}", "weights": w.tolist(),
               "loader": functools.partial(load_soup, paths, w.tolist(), config.model)}
              for i, w in enumerate(resolve_preferences(config))]
    return generate_models(config, run, models, train_hash(config), log=log)


def run_evaluate_stage(config: RunConfig, run: RunDir, log=print) -> dict:
    entries = run_generate(config, run, log=lambda *_: None)
    return evaluate_models(config, run, entries, METHOD, train_hash(config), log=log)


def run_pipeline(config: RunConfig, run: RunDir, log=print) -> dict:
    return run_method(config, run, sys.modules[__name__], log=log)
