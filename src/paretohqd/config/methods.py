"""The sections each method owns: ParetoHqD's stage 2, RiC's offline and online stages, Rewarded Soups."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from .base import Section, require
from .sections import SamplingConfig


def _stage2_sampling() -> SamplingConfig:
    return SamplingConfig(temperature=0.7, top_p=0.9, top_k=0, max_new_tokens=128)


@dataclass
class Stage2Config(Section):
    """ParetoHqD stage 2: the M+1 representative stage-1 models regenerate data that is rescored and reselected."""

    enabled: bool = True
    num_prompts: int = 10000
    """Training prompts each representative model answers (paper: 10,000; capped at the distinct prompts)."""
    k: Optional[int] = None
    """Samples per preference from the new data (None: select.k // 2, the paper's 50)."""
    min_pool: Optional[int] = None
    """P_min on the new pool (None: the same rule as select.min_pool, capped at the pool size)."""
    pool: Literal["generated", "generated+original"] = "generated"
    """The pool stage 2 selects from (DEFAULT: the generated samples only, normalisation recomputed on them)."""
    sampling: SamplingConfig = field(default_factory=_stage2_sampling)
    sft: dict = field(default_factory=lambda: {"max_steps": 100})
    """trl.SFTConfig fields for stage 2, over train.sft (DEFAULT: 100 steps)."""

    def check(self) -> None:
        require(self.num_prompts >= 1, f"num_prompts must be at least 1, not {self.num_prompts}")
        require(self.k is None or self.k >= 1, f"k must be at least 1, not {self.k}")
        require(self.min_pool is None or self.min_pool >= 1, f"min_pool must be at least 1, not {self.min_pool}")


@dataclass
class RiCOfflineConfig(Section):
    """RiC's offline stage: conditional SFT on all scored samples (RiC's code: 20k steps, lr 1.41e-4 with linear
    decay, LoRA r 64 / alpha 128)."""

    sft: dict = field(default_factory=lambda: {"max_steps": 20000, "learning_rate": 1.41e-4,
                                               "lr_scheduler_type": "linear"})
    """trl.SFTConfig fields over train.sft."""
    lora: dict = field(default_factory=lambda: {"r": 64, "lora_alpha": 128})
    """peft.LoraConfig fields over train.lora."""


@dataclass
class RiCOnlineConfig(Section):
    """RiC's online stage: multi-objective rejection sampling rounds (RiC's code: 4k steps at lr 1e-5, constant)."""

    iterations: int = 2
    """Rounds after the offline stage (0: offline only)."""
    prompts: int = 1000
    """Training prompts answered per round."""
    sft: dict = field(default_factory=lambda: {"max_steps": 4000, "learning_rate": 1.0e-5,
                                               "lr_scheduler_type": "constant"})
    """trl.SFTConfig fields over train.sft."""
    keep_quantile: float = 0.7
    """Online samples (and the original samples mixed back in) are kept when any objective reaches its quantile."""
    mix_samples: int = 10000
    """Filtered original samples mixed into each round."""
    sampling: SamplingConfig = field(default_factory=_stage2_sampling)

    def check(self) -> None:
        require(self.iterations >= 0, f"iterations must be 0 or more, not {self.iterations}")
        require(self.prompts >= 1, f"prompts must be at least 1, not {self.prompts}")
        require(0.0 < self.keep_quantile < 1.0, f"keep_quantile must be in (0, 1), not {self.keep_quantile}")
        require(self.mix_samples >= 0, f"mix_samples must be 0 or more, not {self.mix_samples}")


@dataclass
class RiCConfig(Section):
    """Rewards-in-Context (Yang et al., 2024): one model conditioned on target rewards written into the prompt."""

    offline: RiCOfflineConfig = field(default_factory=RiCOfflineConfig)
    online: RiCOnlineConfig = field(default_factory=RiCOnlineConfig)
    mapping: Literal["l2", "linf"] = "l2"
    """Preference -> target rewards: target_i = w_i/||w|| * (high - low) + low, with the l2 or max norm."""


@dataclass
class SoupsConfig(Section):
    """Rewarded Soups: one model per objective, weight-averaged per preference."""

    k: int = 100
    """Each objective's model trains on the k samples with the highest reward on it."""

    def check(self) -> None:
        require(self.k >= 1, f"k must be at least 1, not {self.k}")
