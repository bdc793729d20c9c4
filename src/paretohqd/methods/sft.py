"""The SFT baseline (docs/methods/sft.md): one model fine-tuned on the preferred responses, one point on the front.

Preference-pair data (HH-RLHF) trains on the chosen replies; data without a ``label`` column trains on every
sample. It goes through the same scoring, generation and evaluation stages as ParetoHqD, so their numbers compare.
"""

from __future__ import annotations

import pandas as pd

from ..errors import UserError
from ..pipeline import Shared, Unit
from ..pipeline.train import fit, training_unit
from ..train import ModelCard
from .base import EvaluatedModel, Method, sample_frame


class SFT(Method):
    key = "sft"
    name = "SFT"
    serve_modes = ()

    def training_units(self, shared: Shared) -> list[Unit]:
        c = shared.config
        return [training_unit("train/sft", "train_sft", "models/sft/stage1", train_chosen, c,
                              {"scores": shared.scores}, seed=c.seed, settings={"objectives": c.objective_names},
                              progress=shared.progress)]

    def evaluated_models(self, shared: Shared, training: list[Unit]) -> list[EvaluatedModel]:
        return [EvaluatedModel("sft", None, adapters=[training[0]])]


def training_samples(scores: pd.DataFrame) -> pd.DataFrame:
    samples = scores[scores["label"] == "chosen"] if "label" in scores.columns else scores
    if samples.empty:
        raise UserError("the SFT baseline found no chosen responses to train on")
    return sample_frame(samples)


def train_chosen(ctx) -> None:
    samples = training_samples(pd.read_parquet(ctx.input("scores")))
    card = ModelCard("SFT baseline", ["sft-baseline"],
                     [f"objectives it is evaluated on: {', '.join(ctx.settings['objectives'])}",
                      f"training data: {len(samples)} preferred responses (no preference conditioning: one model, "
                      "one point)"])
    fit(ctx, samples, card)
