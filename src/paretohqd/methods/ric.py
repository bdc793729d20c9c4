"""Rewards-in-Context (Yang et al., ICML 2024; METHOD.md section 4): one model for every preference.

Offline: conditional SFT on all scored samples, each prompt carrying its z-scored rewards
("... <harmless> 0.52 <helpful> -0.31\\n\\nAssistant:"). Online (multi-objective rejection sampling): targets near
the upper boundary, generate, relabel every sample with the rewards it actually got, keep samples with any objective
at or above its quantile, mix with filtered original samples, train further. Inference: a preference becomes target
rewards (the 'l2' or 'linf' mapping) written into the prompt.
"""

from __future__ import annotations

import dataclasses
import functools
import sys

import numpy as np
import pandas as pd

from .. import io
from ..config import RunConfig
from ..data import ASSISTANT_MARKER
from ..runs import RunDir
from .stages import (chain_hash, evaluate_models, generate_models, generate_unit, run_method, score_hash,
                     unique_prompts)

METHOD = "RiC"


def ric_prompt(prompt: str, targets, names: list[str]) -> str:
    """The one definition of RiC's conditioned prompt: reward tokens just before the final assistant turn."""
    tokens = " ".join(f"<{name}> {float(value):.2f}" for name, value in zip(names, targets))
    if prompt.endswith(ASSISTANT_MARKER):
        return f"{prompt.removesuffix(ASSISTANT_MARKER)} {tokens}{ASSISTANT_MARKER}"
    return f"{prompt} {tokens}"


def z_scores(values: np.ndarray, mean, std) -> np.ndarray:
    std = np.where(np.asarray(std) > 0, std, 1.0)
    return (values - np.asarray(mean)) / std


def preference_targets(weights: np.ndarray, low: np.ndarray, high: np.ndarray, mapping: str) -> np.ndarray:
    """target_i = w_i / ||w|| * (high_i - low_i) + low_i (RiC's inference mapping; ord 2 or inf)."""
    norm = np.linalg.norm(weights, ord=2 if mapping == "l2" else np.inf, axis=1, keepdims=True)
    return weights / norm * (high - low) + low


def boundary_targets(count: int, high: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Online targets near the upper boundary: every coordinate at the data's high but the smallest of a
    standard-normal draw, which keeps its drawn value."""
    draw = rng.standard_normal((count, len(high)))
    targets = np.broadcast_to(high, draw.shape).copy()
    smallest = draw.argmin(axis=1)
    targets[np.arange(count), smallest] = draw[np.arange(count), smallest]
    return targets


def offline_hash(config: RunConfig) -> str:
    ric = config.ric
    return chain_hash(score_hash(config), config.section_hash("model", "train"), str(config.seed), METHOD,
                      str(ric.offline_steps))


def online_hash(config: RunConfig, iteration: int) -> str:
    return chain_hash(offline_hash(config), config.section_hash("ric"), str(iteration))


def model_path(run: RunDir, iteration: int):
    return run.path / "models" / "ric" / ("offline" if iteration == 0 else f"online_{iteration}")


def final_hash(config: RunConfig) -> str:
    """The final model's settings, and the preference mapping its prompts use."""
    model = online_hash(config, config.ric.online_iterations) if config.ric.online_iterations else offline_hash(config)
    return chain_hash(model, config.ric.mapping)


def keep_mask(z: np.ndarray, quantile: float) -> np.ndarray:
    """Samples with any objective at or above that objective's quantile."""
    return (z >= np.quantile(z, quantile, axis=0)).any(axis=1)


def conditioned(samples: pd.DataFrame, z: np.ndarray, names: list[str]) -> pd.DataFrame:
    out = samples[["id", "prompt", "response"]].copy()
    out["prompt"] = [ric_prompt(p, row, names) for p, row in zip(samples["prompt"], z)]
    return out.reset_index(drop=True)


def run_train(config: RunConfig, run: RunDir, log=print) -> None:
    from ..rewards import build_objectives
    from ..rewards.scoring import score_samples
    from ..train import train_model
    from ..train.sft import is_complete, load_trained

    names = config.objective_names
    ric = config.ric
    scores = pd.read_parquet(run.scores / "scores.parquet")
    stats = io.read_json(run.scores / "stats.json")
    z = z_scores(scores[names].to_numpy(dtype=np.float64), stats["mean"], stats["std"])
    low, high = z.min(axis=0), z.max(axis=0)
    io.write_json(run.path / "models" / "ric" / "normalisation.json",
                  {"mean": stats["mean"], "std": stats["std"], "low": low.tolist(), "high": high.tolist()})
    card = functools.partial(_model_card, config)
    offline = model_path(run, 0)
    with run.stage("train_ric_offline", offline_hash(config), (offline / ".complete",)) as record:
        if not (record.skipped and is_complete(offline, offline_hash(config))):
            train = dataclasses.replace(config.train, stage1_steps=ric.offline_steps)
            train_model(conditioned(scores, z, names), offline, config.model, train, "stage1", seed=config.seed,
                        unit_hash=offline_hash(config), report_to=config.report_to, card=card("offline"),
                        log=log)
    objectives = None
    for iteration in range(1, ric.online_iterations + 1):
        target, unit_hash = model_path(run, iteration), online_hash(config, iteration)
        with run.stage(f"train_ric_online_{iteration}", unit_hash, (target / ".complete",)) as record:
            if record.skipped and is_complete(target, unit_hash):
                continue
            rng = np.random.default_rng(config.seed + iteration)
            prompts = unique_prompts(scores, names)
            prompts = prompts.iloc[np.sort(rng.choice(len(prompts), min(ric.online_prompts, len(prompts)),
                                                      replace=False))].reset_index(drop=True)
            targets = boundary_targets(len(prompts), high, rng)
            shown = dict(zip(prompts["prompt"], (ric_prompt(p, t, names) for p, t in zip(prompts["prompt"], targets))))
            previous = model_path(run, iteration - 1)
            folder = run.path / "ric" / f"online_{iteration}"
            generated = generate_unit(folder / "generations.jsonl",
                                      functools.partial(load_trained, previous, config.model), prompts, config,
                                      ric.sampling, seed=config.seed + 3000 + iteration, unit_hash=unit_hash,
                                      extra={"model": f"ric/{previous.name}"}, log=log, condition=shown.__getitem__)
            generated["id"] = f"online{iteration}:" + generated["prompt_id"]
            objectives = objectives or build_objectives(config.objectives)
            scored, _ = score_samples(generated, objectives, [c.batch_size for c in config.objectives],
                                      folder / "cache", config.score.shard_size, consistency_check=0,
                                      show_progress=False)
            obtained = z_scores(scored[names].to_numpy(dtype=np.float64), stats["mean"], stats["std"])
            kept = keep_mask(obtained, ric.keep_quantile)
            original = np.flatnonzero(keep_mask(z, ric.keep_quantile))
            original = rng.choice(original, size=min(ric.mix_samples, len(original)), replace=False)
            mixed = pd.concat([conditioned(scored[kept], obtained[kept], names),
                               conditioned(scores.iloc[np.sort(original)], z[np.sort(original)], names)],
                              ignore_index=True)
            log(f"ric online {iteration}: kept {int(kept.sum())} of {len(scored)} generated samples, "
                f"mixed with {len(original)} original samples")
            train = dataclasses.replace(config.train, stage2_steps=ric.online_steps,
                                        stage2_learning_rate=ric.online_learning_rate)
            train_model(mixed, target, config.model, train, "stage2", seed=config.seed + iteration,
                        unit_hash=unit_hash, init_from=previous, report_to=config.report_to,
                        card=card(f"online iteration {iteration}"), log=log)


def _model_card(config: RunConfig, stage: str):
    from ..train.sft import ModelCard

    names = config.objective_names
    example = ric_prompt("..." + ASSISTANT_MARKER, [0.5] * len(names), names)
    return ModelCard(f"Rewards-in-Context model ({stage})", ["rewards-in-context"],
                     [f"objectives written into the prompt as z-scores: {', '.join(names)}",
                      f"example prompt: {example!r}"])


def run_generate(config: RunConfig, run: RunDir, log=print) -> list[dict]:
    from .paretohqd import resolve_preferences

    names = config.objective_names
    bounds = io.read_json(run.path / "models" / "ric" / "normalisation.json")
    weights = resolve_preferences(config)
    targets = preference_targets(weights, np.array(bounds["low"]), np.array(bounds["high"]), config.ric.mapping)
    final = model_path(run, config.ric.online_iterations)
    models = [{"name": f"pref_{i:02d}", "weights": w.tolist(), "path": final,
               "condition": functools.partial(ric_prompt, targets=t, names=names)}
              for i, (w, t) in enumerate(zip(weights, targets))]
    return generate_models(config, run, models, final_hash(config), log=log)


def run_evaluate_stage(config: RunConfig, run: RunDir, log=print) -> dict:
    entries = run_generate(config, run, log=lambda *_: None)
    return evaluate_models(config, run, entries, METHOD, final_hash(config), log=log)


def run_pipeline(config: RunConfig, run: RunDir, log=print) -> dict:
    return run_method(config, run, sys.modules[__name__], log=log)
