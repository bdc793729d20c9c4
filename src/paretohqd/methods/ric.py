"""Rewards-in-Context (Yang et al., ICML 2024; docs/methods/ric.md): one model for every preference, as RiC's
code (ric/utils.py, ric/main.py, ric/generation.py of YangRui2015/RiC) does it; every choice is a ``ric`` setting
whose default is RiC's.

Offline: conditional SFT on all scored samples, each prompt carrying its rewards: z-scored, each side squashed
into [-4, 4] and rounded to one decimal ("... <rm1_score> 0.5 <rm2_score> -0.3 \\n\\nAssistant:"). Online
(multi-objective rejection sampling): goals near the upper boundary of [low, high] (the extremes of 100k
standard-normal draws), generate for prompts drawn from the training samples, relabel every sample with the
z-scores it obtained, keep samples with any objective at or above its quantile, train on them (and on the kept
samples of earlier rounds) mixed with filtered original samples. Inference: a preference becomes target rewards
(the 'l2' mapping RiC's evaluation uses) in the extremes of 50k standard-normal draws, written into the prompt.
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
from .base import EvaluatedModel, Method, require_no_mode, sample_frame

ONLINE_SEED_OFFSET = 3000
SUMMARY_RESPONSE_MARKER = "### Response:"
RESPONSE_MARKERS = (ASSISTANT_MARKER, SUMMARY_RESPONSE_MARKER)


def reward_tokens(targets, names: list[str], token: str = "<rm{index}_score>", decimals: int = 1) -> str:
    """``<rm1_score> 0.5 <rm2_score> -0.3``: each reward named by ``token`` and rounded as RiC's code does."""
    return " ".join(f"{token.format(index=i + 1, name=name)} {round(float(value), decimals):.{decimals}f}"
                    for i, (name, value) in enumerate(zip(names, targets)))


def ric_prompt(prompt: str, targets, names: list[str], token: str = "<rm{index}_score>", decimals: int = 1) -> str:
    """The one definition of RiC's conditioned prompt: the reward tokens just before the response marker (the
    final "\n\nAssistant:" of a dialogue, "### Response:" of a summary prompt), after a space, as RiC's code
    writes them; a prompt with neither marker gets them at its end. Only the marker is removed (RiC's
    ``str.rstrip(marker)`` strips a character set and eats the end of the last turn)."""
    tokens = reward_tokens(targets, names, token, decimals)
    body = prompt.rstrip()
    for marker in RESPONSE_MARKERS:
        if body.endswith(marker):
            return f"{body.removesuffix(marker).rstrip()} {tokens} {marker}{prompt[len(body):]}"
    return f"{body} {tokens}"


def z_scores(values: np.ndarray, mean, std) -> np.ndarray:
    std = np.where(np.asarray(std) > 0, std, 1.0)
    return (values - np.asarray(mean)) / std


def squash_scales(z: np.ndarray, squash: float, quantiles, clip: float) -> tuple[np.ndarray, np.ndarray]:
    """RiC's balancing: (scale of the positive side, of the negative side) per objective, so that the upper
    quantile of the clipped z-scores maps to +squash and the lower one to -squash."""
    clipped = np.clip(z, -clip, clip)
    top, bottom = np.quantile(clipped, quantiles[1], axis=0), np.quantile(clipped, quantiles[0], axis=0)
    positive = np.where(top > 0, squash / np.where(top > 0, top, 1.0), 1.0)
    negative = np.where(bottom < 0, -squash / np.where(bottom < 0, bottom, -1.0), 1.0)
    return positive, negative


def reward_labels(raw: np.ndarray, bounds: dict, squashed: bool, decimals: int) -> np.ndarray:
    """The rewards written into training prompts: z-scores with the offline statistics, rounded; ``squashed``
    also scales each side into [-squash, squash] as RiC's offline labels are."""
    z = np.round(z_scores(raw, bounds["mean"], bounds["std"]), decimals)
    if squashed and bounds.get("squash") is not None:
        z = np.clip(z, -bounds["squash_clip"], bounds["squash_clip"])
        z = np.where(z >= 0, z * np.asarray(bounds["positive_scale"]), z * np.asarray(bounds["negative_scale"]))
        z = np.clip(z, -bounds["squash"], bounds["squash"])
    return np.round(z, decimals)


def normal_range(draws: int, rng: np.random.Generator) -> tuple[float, float]:
    """(min, max) of ``draws`` standard-normal draws: RiC's range for goals and targets (about +-4.3)."""
    sample = rng.standard_normal(draws)
    return float(sample.min()), float(sample.max())


def preference_targets(weights: np.ndarray, low: np.ndarray, high: np.ndarray, mapping: str,
                       decimals: int = 1) -> np.ndarray:
    """RiC's ``map_rewards_from_preference``, one row per preference. linf: the largest weight's objective at
    high, every other at min(M * w_i, 1) * (high - low) + low; l2: w_i / ||w||_2 * (high - low) + low; linear:
    w_i * (high - low) + low; rounded."""
    weights = np.asarray(weights, dtype=np.float64)
    low, high = np.broadcast_to(low, weights.shape), np.broadcast_to(high, weights.shape)
    if mapping == "linf":
        share = np.minimum(weights.shape[1] * weights, 1.0)
        share[np.arange(len(weights)), weights.argmax(axis=1)] = 1.0
    elif mapping == "l2":
        share = weights / np.linalg.norm(weights, axis=1, keepdims=True)
    else:
        share = weights
    return np.round(share * (high - low) + low, decimals)


def boundary_targets(count: int, num_objectives: int, low: float, high: float, rng: np.random.Generator,
                     decimals: int = 1) -> np.ndarray:
    """RiC's ``sample_goals``: every coordinate uniform in [low, high], then all but the smallest set to high."""
    goals = np.round(rng.random((count, num_objectives)) * (high - low) + low, decimals)
    smallest = goals.argmin(axis=1)
    targets = np.full_like(goals, high)
    targets[np.arange(count), smallest] = goals[np.arange(count), smallest]
    return targets


def keep_mask(z: np.ndarray, quantile: float) -> np.ndarray:
    """Samples with any objective at or above that objective's quantile."""
    return (z >= np.quantile(z, quantile, axis=0)).any(axis=1)


def conditioned(samples: pd.DataFrame, labels: np.ndarray, names: list[str], token: str, decimals: int
                ) -> pd.DataFrame:
    out = sample_frame(samples)
    out["prompt"] = [ric_prompt(p, row, names, token, decimals) for p, row in zip(samples["prompt"], labels)]
    return out


class RiC(Method):
    key = "ric"
    name = "RiC"
    serve_modes = ()

    def training_units(self, shared: Shared) -> list[Unit]:
        c, ric = shared.config, shared.config.ric
        names = c.objective_names
        prompt_format = {"objectives": names, "token": ric.token, "decimals": ric.decimals}
        bounds = Unit(name="ric/normalisation", kind="ric_normalisation", stage="train_ric_offline", command="train",
                      action=write_normalisation, outputs=("models/ric/normalisation.json",),
                      upstream={"scores": shared.scores},
                      settings={"objectives": names, "squash": ric.squash,
                                "squash_quantiles": list(ric.squash_quantiles), "squash_clip": ric.squash_clip,
                                "decimals": ric.decimals, "target_range": ric.target_range,
                                "target_draws": ric.target_draws, "seed": c.seed})
        offline = training_unit("train/ric/offline", "train_ric_offline", "models/ric/offline", train_offline, c,
                                {"scores": shared.scores, "normalisation": bounds}, seed=c.seed,
                                sft_layers=[("ric.offline.sft", ric.offline.sft)],
                                lora_layers=[("ric.offline.lora", ric.offline.lora)], settings=prompt_format,
                                progress=shared.progress)
        online = ric.online
        units, previous, rounds = [bounds, offline], offline, {}
        for iteration in range(1, online.iterations + 1):
            stage = f"train_ric_online_{iteration}"
            goals = {**prompt_format, "seed": c.seed + iteration, "goal_draws": online.goal_draws}
            draw = {"count": online.prompts, "seed": c.seed + iteration, "drop": names}
            if online.prompt_draw == "samples":
                draw["replace"] = True
            generated = generation_unit(
                f"ric/online_{iteration}/generate", stage, "train", f"ric/online_{iteration}/generations.jsonl",
                shared.scores, c.model, online.sampling, c.seed + ONLINE_SEED_OFFSET + iteration,
                adapters=[previous], inputs={"normalisation": bounds},
                condition=functools.partial(boundary_condition, **goals), condition_settings=goals,
                prompt_sample=draw, progress=shared.progress, generation=c.generation)
            scored = scoring_unit(f"ric/online_{iteration}/score", stage, f"ric/online_{iteration}",
                                  {f"online{iteration}": generated}, shared.scoring)
            rounds[iteration] = scored
            kept_rounds = range(1, iteration + 1) if online.accumulate else [iteration]
            model = training_unit(
                f"train/ric/online_{iteration}", stage, f"models/ric/online_{iteration}", train_online, c,
                {**{f"generated:{r}": rounds[r] for r in kept_rounds}, "scores": shared.scores,
                 "normalisation": bounds, "init": previous},
                seed=c.seed + iteration, sft_layers=[("ric.online.sft", online.sft)],
                lora_layers=[("ric.offline.lora", ric.offline.lora)],
                settings={**prompt_format, "keep_quantile": online.keep_quantile, "relabel": online.relabel,
                          "mix_samples": online.mix_samples, "iteration": iteration},
                progress=shared.progress)
            units += [generated, scored, model]
            previous = model
        return units

    def evaluated_models(self, shared: Shared, training: list[Unit]) -> list[EvaluatedModel]:
        return [conditioned_model(f"pref_{i:02d}", w, shared, training) for i, w in enumerate(shared.weights)]

    def served_model(self, shared: Shared, training: list[Unit], weights, mode: str | None = None) -> EvaluatedModel:
        """Any preference: the one model, its target rewards written into the prompt."""
        require_no_mode(self, mode)
        return conditioned_model("", weights, shared, training)


def conditioned_model(name: str, weights, shared: Shared, training: list[Unit]) -> EvaluatedModel:
    """The final model, answering prompts that carry the targets of ``weights`` (read from the normalisation)."""
    ric = shared.config.ric
    final = [u for u in training if u.kind == "sft"][-1]
    bounds = next(u for u in training if u.name == "ric/normalisation")
    settings = {"weights": [float(x) for x in weights], "names": shared.config.objective_names,
                "mapping": ric.mapping, "token": ric.token, "decimals": ric.decimals}
    return EvaluatedModel(name, settings["weights"], adapters=[final], inputs={"normalisation": bounds},
                          condition=functools.partial(target_condition, **settings), condition_settings=settings)


def write_normalisation(ctx) -> None:
    """What RiC's prompts are written in: the z-score statistics, the squashing scales of the offline labels,
    the labels' range, and the range preferences are mapped into at inference. Everything needed to serve."""
    s = ctx.settings
    stats = io.read_json(ctx.input("scores", 1))
    scores = pd.read_parquet(ctx.input("scores"))
    raw = scores[s["objectives"]].to_numpy(dtype=np.float64)
    bounds = {"objectives": s["objectives"], "mean": stats["mean"], "std": stats["std"], "squash": s["squash"],
              "squash_clip": s["squash_clip"], "decimals": s["decimals"]}
    if s["squash"] is not None:
        z = np.round(z_scores(raw, stats["mean"], stats["std"]), s["decimals"])
        positive, negative = squash_scales(z, s["squash"], s["squash_quantiles"], s["squash_clip"])
        bounds.update(positive_scale=positive.tolist(), negative_scale=negative.tolist())
    labels = reward_labels(raw, bounds, squashed=True, decimals=s["decimals"])
    bounds["label_low"], bounds["label_high"] = labels.min(axis=0).tolist(), labels.max(axis=0).tolist()
    if s["target_range"] == "normal_draws":
        low, high = normal_range(s["target_draws"], np.random.default_rng([s["seed"], 4]))
        low, high = [low] * len(s["objectives"]), [high] * len(s["objectives"])
    else:
        low, high = bounds["label_low"], bounds["label_high"]
    bounds["target_low"], bounds["target_high"] = low, high
    bounds["target_range"] = s["target_range"]
    io.write_json(ctx.output, bounds)


def target_condition(prompts: list[str], inputs, weights: list[float], names: list[str], mapping: str, token: str,
                     decimals: int) -> list[str]:
    """A preference's prompts: its target rewards written in."""
    bounds = io.read_json(inputs["normalisation"][0])
    targets = preference_targets(np.array([weights]), np.array(bounds["target_low"]), np.array(bounds["target_high"]),
                                 mapping, decimals)[0]
    return [ric_prompt(p, targets, names, token, decimals) for p in prompts]


def boundary_condition(prompts: list[str], inputs, objectives: list[str], token: str, decimals: int, seed: int,
                       goal_draws: int) -> list[str]:
    """An online round's prompts: one goal near the upper boundary per prompt (RiC's ``sample_goals``)."""
    rng = np.random.default_rng([seed, 1])
    low, high = (round(value, decimals) for value in normal_range(goal_draws, rng))
    targets = boundary_targets(len(prompts), len(objectives), low, high, rng, decimals)
    return [ric_prompt(p, t, objectives, token, decimals) for p, t in zip(prompts, targets)]


def _card(stage: str, settings: dict) -> ModelCard:
    names = settings["objectives"]
    example = ric_prompt("..." + ASSISTANT_MARKER, [0.5] * len(names), names, settings["token"], settings["decimals"])
    return ModelCard(f"Rewards-in-Context model ({stage})", ["rewards-in-context"],
                     [f"objectives written into the prompt as rewards: {', '.join(names)}",
                      f"example prompt: {example!r}",
                      "serving: write the targets of a preference into the prompt from models/ric/normalisation.json "
                      "(paretohqd.methods.ric.target_condition)"])


def _labels(scores: pd.DataFrame, ctx, squashed: bool) -> np.ndarray:
    bounds = io.read_json(ctx.input("normalisation"))
    raw = scores[ctx.settings["objectives"]].to_numpy(dtype=np.float64)
    return reward_labels(raw, bounds, squashed, ctx.settings["decimals"])


def train_offline(ctx) -> None:
    s = ctx.settings
    scores = pd.read_parquet(ctx.input("scores"))
    fit(ctx, conditioned(scores, _labels(scores, ctx, True), s["objectives"], s["token"], s["decimals"]),
        _card("offline", s))


def train_online(ctx) -> None:
    """Kept samples of this round (and, accumulating, of the earlier ones), relabelled with the rewards they
    obtained, plus ``mix_samples`` quantile-filtered original samples."""
    s = ctx.settings
    scores = pd.read_parquet(ctx.input("scores"))
    labels = _labels(scores, ctx, True)
    parts, counts = [], []
    for role in sorted((r for r in ctx.inputs if r.startswith("generated:")), key=lambda r: int(r.split(":")[1])):
        generated = pd.read_parquet(ctx.input(role))
        obtained = _labels(generated, ctx, s["relabel"] == "squashed")
        kept = keep_mask(obtained, s["keep_quantile"])
        parts.append(conditioned(generated[kept], obtained[kept], s["objectives"], s["token"], s["decimals"]))
        counts.append(f"{int(kept.sum())} of {len(generated)}")
    rng = np.random.default_rng([s["seed"], s["iteration"], 2])
    original = np.flatnonzero(keep_mask(labels, s["keep_quantile"]))
    original = np.sort(rng.choice(original, size=min(s["mix_samples"], len(original)), replace=False))
    mixed = pd.concat([*parts, conditioned(scores.iloc[original], labels[original], s["objectives"], s["token"],
                                           s["decimals"])], ignore_index=True)
    ctx.log(f"ric online {s['iteration']}: kept {', '.join(counts)} generated samples (rounds 1..{len(parts)}), "
            f"mixed with {len(original)} original samples")
    fit(ctx, mixed, _card(f"online iteration {s['iteration']}", s))
