"""MORLHF (docs/methods/morlhf.md), with RLOO instead of PPO: "MORLHF (RLOO)". For each selected preference w one model
is trained online from the base on the scalar sum_i w_i r_i with a KL penalty to the base (trl.RLOOTrainer,
``beta`` > 0): the policy answers ``morlhf.prompts`` distinct training prompts, every objective scores each
completion, TRL weights the rewards by w. By far the most expensive baseline (the paper: 2,273 GPU-h for 5 models),
so ``morlhf.preferences`` picks which grid preferences to train.
"""

from __future__ import annotations

import functools

import pandas as pd

from .. import io
from ..errors import UserError
from ..pipeline import Shared, Unit
from ..pipeline.built_objectives import built_objective
from ..pipeline.distributed import launched_world
from ..pipeline.generate import sample_prompts
from ..pipeline.rundir import unit_tracking
from ..pipeline.train import model_settings, rebuild_model_config
from ..policy import check_model, resolve_device
from ..rewards.scoring import score_rows
from ..tables import format_vector
from ..tracking import check_report_to
from ..train import ModelCard
from ..train.common import shared_sft_fields
from ..train.rloo import ObjectiveReward, check_rloo_settings, split_rloo_settings, train_rloo
from .base import EvaluatedModel, Method
from .ric import z_scores


class MORLHF(Method):
    key = "morlhf"
    name = "MORLHF (RLOO)"

    def training_units(self, shared: Shared) -> list[Unit]:
        return [morlhf_unit(shared, index) for index in trained_preferences(shared)]

    def evaluated_models(self, shared: Shared, training: list[Unit]) -> list[EvaluatedModel]:
        return [EvaluatedModel(f"pref_{i:02d}", [float(x) for x in shared.weights[i]], adapters=[unit])
                for i, unit in zip(trained_preferences(shared), training)]


def trained_preferences(shared: Shared) -> list[int]:
    """The grid indices ``morlhf.preferences`` selects (all when unset), in grid order."""
    count = len(shared.weights)
    chosen = shared.config.morlhf.preferences
    if chosen is None:
        return list(range(count))
    outside = [i for i in chosen if i >= count]
    if outside:
        raise UserError(f"morlhf.preferences lists index {outside[0]}, but the preference grid has {count} "
                        f"preferences (indices 0 to {count - 1})")
    return sorted(chosen)


def morlhf_unit(shared: Shared, index: int) -> Unit:
    """One preference's RLOO training unit: its key holds the RLOO and LoRA settings, the policy, the seed, the
    objectives' identities, the weights, the normalisation and the prompt draw; logging lives in options."""
    c = shared.config
    m = c.morlhf
    rloo_layers = [("train.sft", shared_sft_fields(c.train.sft, "rloo")), ("morlhf.rloo", m.rloo)]
    lora_layers = [("train.lora", c.train.lora), ("morlhf.lora", m.lora)] if c.train.use_lora else None
    rloo, cosmetic = split_rloo_settings({key: value for _, layer in rloo_layers for key, value in layer.items()})
    lora = {key: value for _, layer in lora_layers for key, value in layer.items()} if lora_layers else None
    model, placement = model_settings(c.model)
    use_cpu = resolve_device(c.model.device) == "cpu"
    scoring, scoring_options = shared.scoring
    settings = {"rloo": rloo, "lora": lora, "model": model, "seed": c.seed, **scoring,
                "weights": [float(w) for w in shared.weights[index]], "normalise": m.normalise,
                "prompts": {"count": m.prompts, "seed": c.seed, "drop": c.objective_names}}
    processes = launched_world()[1]
    if processes > 1:  # data-parallel training multiplies the global batch: another result
        settings["processes"] = processes
    name = f"train/morlhf/pref_{index:02d}"
    return Unit(name=name, kind="rloo", stage="train_morlhf", command="train",
                action=train_preference, outputs=(f"models/pref_{index:02d}/morlhf",),
                upstream={"scores": shared.scores}, settings=settings,
                options={"rloo_cosmetic": cosmetic, "tracking": unit_tracking(c.report_to, c.output_dir, name),
                         "progress": shared.progress,
                         "objective_configs": scoring_options["configs"], **placement},
                check=lambda: (check_rloo_settings(rloo_layers, lora_layers, use_cpu), check_report_to(c.report_to),
                               check_model(c.model.name_or_path, c.model.revision, lora, c.model.device)))


def reward_functions(settings: dict, configs: list[dict], stats: dict) -> tuple[list[ObjectiveReward], dict]:
    """One TRL reward function per objective, z-scored against the offline scores' ``stats`` when the unit says
    so; and the normalisation used, per objective."""
    rewards, used = [], {}
    for entry, config in zip(settings["objectives"], configs):
        name, transform = entry["name"], None
        if settings["normalise"] == "zscore":
            column = stats["objectives"].index(name)
            mean, std = float(stats["mean"][column]), float(stats["std"][column])
            transform = functools.partial(z_scores, mean=mean, std=std)
            used[name] = {"mean": mean, "std": std}
        score = functools.partial(score_rows, built_objective(config), batch_size=config["batch_size"])
        rewards.append(ObjectiveReward(name, score, transform))
    return rewards, used


def train_preference(ctx) -> None:
    from trl import RLOOConfig

    s, o = ctx.settings, ctx.options
    prompts = sample_prompts(pd.read_parquet(ctx.input("scores")), s["prompts"])
    rewards, normalisation = reward_functions(s, o["objective_configs"], io.read_json(ctx.input("scores", 1)))
    names = [entry["name"] for entry in s["objectives"]]
    rloo = {**s["rloo"], **o["rloo_cosmetic"]}
    card = ModelCard(
        f"MORLHF (RLOO) model for preference {format_vector(s['weights'], '.3g')}",
        ["multi-objective-alignment", "morlhf", "rloo"],
        [f"objectives (maximised): {', '.join(names)}",
         "preference weights: " + ", ".join(f"{n} {w:.3g}" for n, w in zip(names, s["weights"])),
         "reward: sum_i w_i r_i with r_i " + ("z-scored against the offline scores (" + ", ".join(
             f"{n}: mean {v['mean']:.4g}, std {v['std']:.4g}" for n, v in normalisation.items()) + ")"
             if normalisation else "raw"),
         f"training: online RLOO (trl.RLOOTrainer) on {len(prompts)} distinct training prompts, "
         f"{rloo.get('num_generations', RLOOConfig.num_generations)} completions each, KL penalty beta "
         f"{rloo.get('beta', RLOOConfig.beta)} to the base",
         "method: MORLHF with RLOO instead of PPO (TRL 1.x has no PPO trainer)"])
    train_rloo(prompts, ctx.output, rebuild_model_config(s["model"], o), rloo, s["lora"], s["seed"], rewards,
               s["weights"], tracking=o["tracking"], card=card, log=ctx.log, progress=o["progress"],
               facts={"normalise": s["normalise"], "normalisation": normalisation}, checkpoint_identity=ctx.key)
