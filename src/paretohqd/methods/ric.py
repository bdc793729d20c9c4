"""Rewards-in-Context (Yang et al., ICML 2024; METHOD.md section 4): one model for every preference.

Offline: conditional SFT on all scored samples, each prompt carrying its z-scored rewards
("... <harmless> 0.52 <helpful> -0.31\\n\\nAssistant:"). Online (multi-objective rejection sampling): targets near
the upper boundary, generate, relabel every sample with the rewards it actually got, keep samples with any objective
at or above its quantile, mix with filtered original samples, train further. Inference: a preference becomes target
rewards (the 'l2' or 'linf' mapping) written into the prompt.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from .. import io
from ..data import ASSISTANT_MARKER
from ..pipeline import Shared, Unit
from ..pipeline.generate import generation_unit
from ..pipeline.score import scoring_unit
from ..pipeline.train import fit, training_unit
from ..train import ModelCard
from .base import EvaluatedModel, Method, sample_frame

ONLINE_SEED_OFFSET = 3000


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


def keep_mask(z: np.ndarray, quantile: float) -> np.ndarray:
    """Samples with any objective at or above that objective's quantile."""
    return (z >= np.quantile(z, quantile, axis=0)).any(axis=1)


def conditioned(samples: pd.DataFrame, z: np.ndarray, names: list[str]) -> pd.DataFrame:
    out = sample_frame(samples)
    out["prompt"] = [ric_prompt(p, row, names) for p, row in zip(samples["prompt"], z)]
    return out


class RiC(Method):
    key = "ric"
    name = "RiC"

    def training_units(self, shared: Shared) -> list[Unit]:
        c, ric = shared.config, shared.config.ric
        names = c.objective_names
        bounds = Unit(name="ric/normalisation", kind="ric_normalisation", stage="train_ric_offline", command="train",
                      action=write_normalisation, outputs=("models/ric/normalisation.json",),
                      upstream={"scores": shared.scores}, settings={"objectives": names})
        offline = training_unit("train/ric/offline", "train_ric_offline", "models/ric/offline", train_offline, c,
                                {"scores": shared.scores, "normalisation": bounds}, seed=c.seed,
                                sft_layers=[("ric.offline.sft", ric.offline.sft)],
                                lora_layers=[("ric.offline.lora", ric.offline.lora)], settings={"objectives": names},
                                progress=shared.progress)
        units, previous = [bounds, offline], offline
        for iteration in range(1, ric.online.iterations + 1):
            stage = f"train_ric_online_{iteration}"
            generated = generation_unit(
                f"ric/online_{iteration}/generate", stage, "train", f"ric/online_{iteration}/generations.jsonl",
                shared.scores, c.model, ric.online.sampling, c.seed + ONLINE_SEED_OFFSET + iteration,
                adapters=[previous], inputs={"normalisation": bounds},
                condition=functools.partial(boundary_condition, names=names, seed=c.seed + iteration),
                condition_settings={"names": names, "seed": c.seed + iteration},
                prompt_sample={"count": ric.online.prompts, "seed": c.seed + iteration, "drop": names},
                progress=shared.progress, generation=c.generation)
            scored = scoring_unit(f"ric/online_{iteration}/score", stage, f"ric/online_{iteration}",
                                  {f"online{iteration}": generated}, shared.scoring)
            model = training_unit(
                f"train/ric/online_{iteration}", stage, f"models/ric/online_{iteration}", train_online, c,
                {"generated": scored, "scores": shared.scores, "normalisation": bounds, "init": previous},
                seed=c.seed + iteration, sft_layers=[("ric.online.sft", ric.online.sft)],
                lora_layers=[("ric.offline.lora", ric.offline.lora)],
                settings={"objectives": names, "keep_quantile": ric.online.keep_quantile,
                          "mix_samples": ric.online.mix_samples, "iteration": iteration},
                progress=shared.progress)
            units += [generated, scored, model]
            previous = model
        return units

    def evaluated_models(self, shared: Shared, training: list[Unit]) -> list[EvaluatedModel]:
        names, mapping = shared.config.objective_names, shared.config.ric.mapping
        final = [u for u in training if u.kind == "sft"][-1]
        bounds = next(u for u in training if u.name == "ric/normalisation")
        models = []
        for i, w in enumerate(shared.weights):
            weights = [float(x) for x in w]
            models.append(EvaluatedModel(
                f"pref_{i:02d}", weights, adapters=[final], inputs={"normalisation": bounds},
                condition=functools.partial(target_condition, weights=weights, names=names, mapping=mapping),
                condition_settings={"weights": weights, "names": names, "mapping": mapping}))
        return models


def write_normalisation(ctx) -> None:
    """The z-score statistics and the z range of the data: what RiC's prompts are written in."""
    stats = io.read_json(ctx.input("scores", 1))
    scores = pd.read_parquet(ctx.input("scores"))
    z = z_scores(scores[ctx.settings["objectives"]].to_numpy(dtype=np.float64), stats["mean"], stats["std"])
    io.write_json(ctx.output, {"mean": stats["mean"], "std": stats["std"], "low": z.min(axis=0).tolist(),
                               "high": z.max(axis=0).tolist()})


def target_condition(prompts: list[str], inputs, weights: list[float], names: list[str], mapping: str) -> list[str]:
    """A preference's prompts: its target rewards written in."""
    bounds = io.read_json(inputs["normalisation"][0])
    targets = preference_targets(np.array([weights]), np.array(bounds["low"]), np.array(bounds["high"]), mapping)[0]
    return [ric_prompt(p, targets, names) for p in prompts]


def boundary_condition(prompts: list[str], inputs, names: list[str], seed: int) -> list[str]:
    """An online round's prompts: targets near the upper boundary, one draw per prompt."""
    bounds = io.read_json(inputs["normalisation"][0])
    targets = boundary_targets(len(prompts), np.array(bounds["high"]), np.random.default_rng([seed, 1]))
    return [ric_prompt(p, t, names) for p, t in zip(prompts, targets)]


def _card(stage: str, names: list[str]) -> ModelCard:
    example = ric_prompt("..." + ASSISTANT_MARKER, [0.5] * len(names), names)
    return ModelCard(f"Rewards-in-Context model ({stage})", ["rewards-in-context"],
                     [f"objectives written into the prompt as z-scores: {', '.join(names)}",
                      f"example prompt: {example!r}"])


def _z(scores: pd.DataFrame, ctx) -> np.ndarray:
    bounds = io.read_json(ctx.input("normalisation"))
    return z_scores(scores[ctx.settings["objectives"]].to_numpy(dtype=np.float64), bounds["mean"], bounds["std"])


def train_offline(ctx) -> None:
    names = ctx.settings["objectives"]
    scores = pd.read_parquet(ctx.input("scores"))
    fit(ctx, conditioned(scores, _z(scores, ctx), names), _card("offline", names))


def train_online(ctx) -> None:
    names, s = ctx.settings["objectives"], ctx.settings
    scores = pd.read_parquet(ctx.input("scores"))
    generated = pd.read_parquet(ctx.input("generated"))
    obtained, z = _z(generated, ctx), _z(scores, ctx)
    kept = keep_mask(obtained, s["keep_quantile"])
    rng = np.random.default_rng([ctx.settings["seed"], s["iteration"], 2])
    original = np.flatnonzero(keep_mask(z, s["keep_quantile"]))
    original = np.sort(rng.choice(original, size=min(s["mix_samples"], len(original)), replace=False))
    mixed = pd.concat([conditioned(generated[kept], obtained[kept], names),
                       conditioned(scores.iloc[original], z[original], names)], ignore_index=True)
    ctx.log(f"ric online {s['iteration']}: kept {int(kept.sum())} of {len(generated)} generated samples, "
            f"mixed with {len(original)} original samples")
    fit(ctx, mixed, _card(f"online iteration {s['iteration']}", names))
