"""MODPO (Zhou et al., 2024; docs/methods/modpo.md; ``src/trainer/modpo_trainer.py`` of ZHZisZZ/modpo): one model per
preference w, trained by DPO on one objective's preference pairs with the other objectives' rewards as a margin:

    loss = -log sigmoid( (1/w_0) [beta (log pi(y_w) - log pi_ref(y_w)) - w_{1:} . m(y_w)]
                        - (1/w_0) [beta (log pi(y_l) - log pi_ref(y_l)) - w_{1:} . m(y_l)] )

with objective 0 = ``modpo.objective`` (its scores order each pair) and m(y) the other objectives' scores of each
response. It runs as trl's sigmoid DPO with beta / w_0 and per-response margins w_{1:} . m(y) / w_0, which
``train.dpo`` puts into the reference log-probs (shifted by w_{1:} . m(y) / beta): the same loss, exactly.

Choices, each a ``modpo`` setting:
- w_0 = 0 (a preference that gives the pair objective no weight) cannot be trained: MODPO divides by w_0. Such a
  preference, and any with w_0 below ``min_weight``, trains at w_0 = min_weight, the other weights scaled to sum
  to 1 - min_weight; it keeps its grid weights in the evaluation, and its card says which weights were trained.
- Margin rewards: MODPO feeds its margin reward models' raw outputs; ``margin_scale: raw`` (DEFAULT) does the same
  with the objectives' raw scores. ``std`` divides each objective by its standard deviation over the scored
  samples, so that a weight means the same on every objective whatever each reward model's scale (z-scores: the
  mean cancels in the pair's difference).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.pairs import preference_pairs, require_pairs
from ..errors import UserError
from ..pipeline import Shared, Unit
from ..pipeline.train import dpo_training_unit, fit_pairs
from ..tables import format_vector
from ..train import ModelCard
from .base import EvaluatedModel, Method


class MODPO(Method):
    key = "modpo"
    name = "MODPO"

    def training_units(self, shared: Shared) -> list[Unit]:
        c = shared.config
        names = c.objective_names
        objective = pair_objective(c.modpo.objective, names)
        others = [name for name in names if name != objective]
        order = [names.index(name) for name in (objective, *others)]
        require_pairs(shared.inputs.samples, "MODPO")
        return [dpo_training_unit(
            f"train/modpo/pref_{i:02d}", "train_modpo", f"models/pref_{i:02d}/stage1", train_preference, c,
            {"scores": shared.scores}, seed=c.seed, dpo_layers=[("modpo.dpo", c.modpo.dpo)],
            lora_layers=[("modpo.lora", c.modpo.lora)],
            settings={"objective": objective, "margin_objectives": others,
                      "weights": [float(x) for x in modpo_weights(w[order], c.modpo.min_weight)],
                      "margin_scale": c.modpo.margin_scale},
            options={"preference": [float(x) for x in w], "objectives": names}, progress=shared.progress,
            margins=True)
            for i, w in enumerate(shared.weights)]

    def evaluated_models(self, shared: Shared, training: list[Unit]) -> list[EvaluatedModel]:
        return [EvaluatedModel(f"pref_{i:02d}", [float(x) for x in w], adapters=[unit])
                for i, (w, unit) in enumerate(zip(shared.weights, training))]


def pair_objective(name: str | None, names: list[str]) -> str:
    if name is None:
        return names[0]
    if name not in names:
        raise UserError(f"modpo.objective '{name}' is not one of the objectives ({', '.join(names)})")
    return name


def modpo_weights(weights, min_weight: float) -> np.ndarray:
    """The weights MODPO trains (pair objective first): w_0 raised to ``min_weight`` when below it, the others
    scaled to sum to 1 - min_weight (a grid preference sums to 1)."""
    w = np.asarray(weights, dtype=np.float64)
    if w[0] >= min_weight or len(w) == 1:
        return w
    rest = w[1:]
    return np.r_[min_weight, (1.0 - min_weight) * rest / rest.sum()]


def margin_rewards(scores: pd.DataFrame, names: list[str], scale: str) -> np.ndarray:
    """(samples, objectives) the margin reads: raw scores, or divided by each objective's standard deviation."""
    values = scores[names].to_numpy(dtype=np.float64).reshape(len(scores), len(names))
    if scale == "std":
        std = values.std(axis=0)
        values = values / np.where(std > 0, std, 1.0)
    return values


def modpo_margins(chosen_rewards, rejected_rewards, weights) -> tuple[np.ndarray, np.ndarray]:
    """Each response's margin in trl's reward units (beta / w_0 times the log-ratio): w_{1:} . m(y) / w_0."""
    w = np.asarray(weights, dtype=np.float64)
    return np.asarray(chosen_rewards) @ w[1:] / w[0], np.asarray(rejected_rewards) @ w[1:] / w[0]


def modpo_beta(beta: float, weights) -> float:
    return float(beta) / float(weights[0])


def train_preference(ctx) -> None:
    from trl import DPOConfig

    s = ctx.settings
    scores = pd.read_parquet(ctx.input("scores"))
    pairs = preference_pairs(scores, s["objective"])
    weights = np.asarray(s["weights"])
    rewards = margin_rewards(scores, s["margin_objectives"], s["margin_scale"])
    pairs["chosen_margin"], pairs["rejected_margin"] = modpo_margins(rewards[pairs["chosen_row"].to_numpy()],
                                                                     rewards[pairs["rejected_row"].to_numpy()],
                                                                     weights)
    beta = s["dpo"].get("beta", DPOConfig.beta)
    names = ctx.options["objectives"]
    trained = dict(zip([s["objective"], *s["margin_objectives"]], weights))
    card = ModelCard(
        f"MODPO model for preference {format_vector(ctx.options['preference'], '.3g')}",
        ["multi-objective-alignment", "modpo", "dpo"],
        [f"objectives (maximised): {', '.join(names)}",
         "preference weights: " + ", ".join(f"{n} {w:.3g}" for n, w in zip(names, ctx.options["preference"])),
         "weights trained: " + ", ".join(f"{n} {trained[n]:.3g}" for n in names)
         + (" (MODPO needs w_0 > 0: the pair objective's weight was raised to modpo.min_weight)"
            if not np.allclose([trained[n] for n in names], ctx.options["preference"]) else ""),
         f"preference pairs: {len(pairs)}, ordered by {s['objective']} scores",
         f"margin: {', '.join(s['margin_objectives']) or 'none'} ({s['margin_scale']} scores), "
         f"beta {beta:g}, trained as DPO with beta / w_0 = {modpo_beta(beta, weights):g}",
         "method: MODPO (Zhou et al., 2024)"])
    fit_pairs(ctx, pairs[["prompt", "chosen", "rejected", "chosen_margin", "rejected_margin"]], card,
              beta=modpo_beta(beta, weights))
