"""Rewarded Soups (Rame et al., 2023; docs/methods/soups.md): one model per objective, then for each preference w the
w-weighted average of their weights. With LoRA the soup is built exactly as the weighted sum of the adapters' weight
updates (peft's "cat" combination: W0 + sum_i w_i B_i A_i); with full fine-tuning, as the weighted average of the
weights. M trainings; every preference is free at test time.

Ingredients (``soups.ingredient``): SFT on each objective's top-k samples, or plain DPO (sigmoid, no margin) on the
data's preference pairs ordered by each objective's scores (``data.pairs``), with MODPO's DPO recipe under
``soups.dpo``. The ingredient is in each unit's key (its kind), so switching retrains; SFT units are keyed as before.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.pairs import preference_pairs, require_pairs
from ..errors import UserError
from ..pipeline import Shared, Unit
from ..pipeline.train import dpo_training_unit, fit, fit_pairs, training_unit
from ..train import ModelCard
from .base import EvaluatedModel, Method, require_no_mode, sample_frame


class RewardedSoups(Method):
    key = "soups"
    name = "Rewarded Soups"
    serve_modes = ()

    def training_units(self, shared: Shared) -> list[Unit]:
        c = shared.config
        if c.soups.ingredient == "dpo":
            require_pairs(shared.inputs.samples, "Rewarded Soups with DPO ingredients")
            return [dpo_training_unit(f"train/soups/objective_{j:02d}", "train_soups",
                                      f"models/objective_{j:02d}/stage1", train_dpo_ingredient, c,
                                      {"scores": shared.scores}, seed=c.seed + j,
                                      dpo_layers=[("modpo.dpo", c.modpo.dpo), ("soups.dpo", c.soups.dpo)],
                                      lora_layers=[("modpo.lora", c.modpo.lora)], settings={"objective": name},
                                      progress=shared.progress)
                    for j, name in enumerate(c.objective_names)]
        return [training_unit(f"train/soups/objective_{j:02d}", "train_soups", f"models/objective_{j:02d}/stage1",
                              train_ingredient, c, {"scores": shared.scores}, seed=c.seed + j,
                              settings={"objective": name, "k": c.soups.k}, progress=shared.progress)
                for j, name in enumerate(c.objective_names)]

    def evaluated_models(self, shared: Shared, training: list[Unit]) -> list[EvaluatedModel]:
        return [EvaluatedModel(f"pref_{i:02d}", [float(x) for x in w], adapters=list(training),
                               mix=[float(x) for x in w])
                for i, w in enumerate(shared.weights)]

    def served_model(self, shared: Shared, training: list[Unit], weights, mode: str | None = None) -> EvaluatedModel:
        """Any preference: the soup of the ingredients with its weights."""
        require_no_mode(self, mode)
        mix = [float(x) for x in weights]
        return EvaluatedModel("", mix, adapters=list(training), mix=mix,
                              made_from=[{"model": unit.name, "weights": [float(j == i) for j in range(len(mix))],
                                          "weight": share} for i, (unit, share) in enumerate(zip(training, mix))])


def best_for(scores: pd.DataFrame, name: str, k: int) -> pd.DataFrame:
    """The k samples with the highest raw reward on one objective (ties: earlier row first)."""
    if k > len(scores):
        raise UserError(f"soups.k={k} is larger than the {len(scores)} scored samples")
    return sample_frame(scores, np.argsort(-scores[name].to_numpy(), kind="stable")[:k])


def train_ingredient(ctx) -> None:
    name = ctx.settings["objective"]
    samples = best_for(pd.read_parquet(ctx.input("scores")), name, ctx.settings["k"])
    fit(ctx, samples, ModelCard(f"Rewarded Soups ingredient: {name}", ["rewarded-soups"],
                                [f"trained on the {len(samples)} samples with the highest {name} reward"]))


def train_dpo_ingredient(ctx) -> None:
    name = ctx.settings["objective"]
    pairs = preference_pairs(pd.read_parquet(ctx.input("scores")), name)
    fit_pairs(ctx, pairs[["prompt", "chosen", "rejected"]],
              ModelCard(f"Rewarded Soups DPO ingredient: {name}", ["rewarded-soups", "dpo"],
                        [f"trained by DPO on {len(pairs)} preference pairs, each ordered by its {name} scores"]))
