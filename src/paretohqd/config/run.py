"""The whole run config: the shared sections and the methods' own."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from .base import Section, require
from .methods import ModpoConfig, MorlhfConfig, RiCConfig, SoupsConfig, Stage2Config
from .sections import (
    DataConfig,
    EvaluateConfig,
    ExecutionConfig,
    GenerationConfig,
    ModelConfig,
    ObjectiveConfig,
    PreferencesConfig,
    ScoreConfig,
    SelectConfig,
    TrainConfig,
)

SEED_HEADROOM = 10_000
"""Stage seeds are ``seed`` plus an offset below this (stage 2, held-out generation, RiC's online rounds)."""


@dataclass
class RunConfig(Section):
    output_dir: str = "runs/default"
    method: Literal["paretohqd", "ric", "sft", "soups", "morlhf", "modpo"] = "paretohqd"
    """paretohqd: one model per preference from Pareto-selected data; sft: the one-model SFT baseline; soups:
    Rewarded Soups (one model per objective, weight-averaged per preference); ric: Rewards-in-Context (one model
    conditioned on target rewards in the prompt); morlhf: MORLHF with RLOO instead of PPO (one model per
    preference, online RL on the weighted reward); modpo: MODPO (one model per preference, DPO with the other
    objectives' rewards as a margin)."""
    seed: int = 0
    """Every random draw of the run derives from it; stages add offsets below ``SEED_HEADROOM``."""
    report_to: str = "none"
    """Where training logs go (trl/transformers report_to: none, tensorboard, wandb, ...): every unit of one run in
    one W&B group / under RUN/logs/tensorboard, and the evaluation's front, hypervolume and report as the run's
    summary there; not part of any key."""
    data: DataConfig = field(default_factory=DataConfig)
    objectives: list[ObjectiveConfig] = field(default_factory=list)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    preferences: PreferencesConfig = field(default_factory=PreferencesConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    ric: RiCConfig = field(default_factory=RiCConfig)
    soups: SoupsConfig = field(default_factory=SoupsConfig)
    morlhf: MorlhfConfig = field(default_factory=MorlhfConfig)
    modpo: ModpoConfig = field(default_factory=ModpoConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)

    @property
    def objective_names(self) -> list[str]:
        return [objective.name for objective in self.objectives]

    def check(self) -> None:
        """What needs more than one section; each failure names the key."""
        require(bool(self.output_dir), "output_dir is empty: give a folder for the run")
        self.output_dir = os.path.expanduser(self.output_dir)  # a shell would have expanded ~ on a command line
        require(0 <= self.seed < 2**32 - SEED_HEADROOM,
                f"seed must be in [0, {2**32 - SEED_HEADROOM}), not {self.seed}: numpy and torch take seeds below "
                f"2**32 and the stages add offsets up to {SEED_HEADROOM}")
        require(self.data.source is not None,
                "data.source is not set: give a file, a saved dataset folder or a Hub id")
        require(bool(self.objectives),
                "no objectives: list at least one under 'objectives' (each with a name and a type)")
        seen: set[str] = set()
        for objective in self.objectives:
            require(objective.name not in seen, f"objective name '{objective.name}' is declared twice")
            seen.add(objective.name)
        reference = self.evaluate.reference_point
        require(reference is None or len(reference) == len(self.objectives),
                f"evaluate.reference_point has {len(reference or [])} values but there are {len(self.objectives)} "
                "objectives")
