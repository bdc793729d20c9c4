"""The sections each method owns: ParetoHqD's stage 2, RiC's offline and online stages, Rewarded Soups."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .base import Section, SettingError, require
from .sections import SamplingConfig


def _stage2_sampling() -> SamplingConfig:
    return SamplingConfig(temperature=0.7, top_p=0.9, top_k=0, max_new_tokens=128)


@dataclass
class Stage2Config(Section):
    """ParetoHqD stage 2: the M+1 representative stage-1 models regenerate data that is rescored and reselected."""

    enabled: bool = True
    num_prompts: int = 10000
    """Training prompts each representative model answers (paper: 10,000; capped at the distinct prompts)."""
    k: int | None = None
    """Samples per preference from the new data (None: half of select.k, or with select.k None half of what
    select's rule gives on the generated samples: the paper's 50 of 30,000)."""
    min_pool: int | None = None
    """P_min on the new pool (None: select.min_pool if set, else select's rule on the generated samples with
    stage 2's k; capped at the pool size). The pool stays a band near the new front, as at stage 1."""
    pool: Literal["generated", "generated+original"] = "generated"
    """The pool stage 2 selects from (DEFAULT: the generated samples only, normalisation recomputed on them)."""
    sampling: SamplingConfig = field(default_factory=_stage2_sampling)
    sft: dict = field(default_factory=lambda: {"max_steps": 100})
    """trl.SFTConfig fields for stage 2, over train.sft (DEFAULT: 100 steps)."""
    evaluate_stage1: bool = True
    """Also evaluate every preference's stage-1 model on the held-out prompts, off the front: what stage 2 adds is
    then a paired difference per preference (the paper's stage-2 ablation) at no training cost."""
    generators: list | None = None
    """The preferences whose stage-1 models generate stage 2's data, as weight vectors (None: the M+1
    representatives, every one-hot and the balanced preference)."""
    missing_generators: Literal["train", "nearest"] = "train"
    """A generator preference that is not in the grid: train its stage-1 model as a generator only (selected and
    trained like the others, never evaluated), or let the nearest grid preference's model stand in."""

    def check(self) -> None:
        require(self.num_prompts >= 1, f"num_prompts must be at least 1, not {self.num_prompts}")
        require(self.generators is None or (isinstance(self.generators, list) and len(self.generators) >= 1),
                f"generators must be a list of weight vectors or null, not {self.generators!r}")
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
    """RiC's online stage, multi-objective rejection sampling (RiC's code: 4k steps per round at lr 1e-5, constant;
    20k generated samples per round)."""

    iterations: int = 2
    """Rounds after the offline stage (0: offline only; the paper ran 2)."""
    prompts: int = 20000
    """Prompts answered per round (RiC: 20,000)."""
    prompt_draw: Literal["samples", "distinct"] = "samples"
    """samples: drawn from the training samples at random with replacement, as RiC's code does (a prompt with
    many samples is drawn more often); distinct: distinct prompts without replacement, capped at their number."""
    goal_draws: int = 100000
    """The goals' range [low, high] is the min and max of this many standard-normal draws (RiC: 100,000, about
    +-4.3), rounded to ``ric.decimals``; each goal draws every coordinate uniformly in it and sets all but the
    smallest to high."""
    relabel: Literal["zscore", "squashed"] = "zscore"
    """The rewards a generated sample is relabelled with: z-scores with the offline statistics (RiC's code), or
    squashed like the offline labels."""
    accumulate: bool = True
    """Each round trains on the kept samples of this and every earlier round (RiC's code), not this round's only."""
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
        require(self.goal_draws >= 2, f"goal_draws must be at least 2, not {self.goal_draws}")
        require(0.0 < self.keep_quantile < 1.0, f"keep_quantile must be in (0, 1), not {self.keep_quantile}")
        require(self.mix_samples >= 0, f"mix_samples must be 0 or more, not {self.mix_samples}")


@dataclass
class RiCConfig(Section):
    """Rewards-in-Context (Yang et al., 2024): one model conditioned on target rewards written into the prompt.
    Every default is what RiC's code (ric/utils.py of YangRui2015/RiC) does."""

    offline: RiCOfflineConfig = field(default_factory=RiCOfflineConfig)
    online: RiCOnlineConfig = field(default_factory=RiCOnlineConfig)
    mapping: Literal["linf", "l2", "linear"] = "l2"
    """Preference -> target rewards in [low, high]. l2 (what RiC's evaluation, ``ric/evaluation.py``, calls
    ``map_rewards_from_preference`` with): w_i / ||w||_2 * (high - low) + low; linf (only that function's default
    argument): the largest weight's objective at high, every other at min(M * w_i, 1) * (high - low) + low;
    linear: w_i * (high - low) + low."""
    target_range: Literal["normal_draws", "data"] = "normal_draws"
    """normal_draws: [low, high] is the min and max of ``target_draws`` standard-normal draws (RiC's evaluation);
    data: the range of the training labels."""
    target_draws: int = 50000
    token: str = "<rm{index}_score>"
    """How each reward is named in the prompt: a format string over {index} (1-based) and {name}."""
    decimals: int = 1
    """Rewards in prompts are rounded to this many decimals (RiC: 1)."""
    squash: float | None = 4.0
    """Offline labels: each objective's z-scores are clipped to +-``squash_clip``, then the positive side scaled
    so its ``squash_quantiles[1]`` quantile is +squash and the negative side so its ``squash_quantiles[0]``
    quantile is -squash, and clipped to +-squash (RiC's balancing). None: plain z-scores."""
    squash_quantiles: list[float] = field(default_factory=lambda: [0.0001, 0.9999])
    squash_clip: float = 10.0

    def check(self) -> None:
        require(self.target_draws >= 2, f"target_draws must be at least 2, not {self.target_draws}")
        require(0 <= self.decimals <= 6, f"decimals must be between 0 and 6, not {self.decimals}")
        require(self.squash is None or self.squash > 0, f"squash must be positive or null, not {self.squash}")
        low, high = ([*list(self.squash_quantiles), None, None])[:2]
        require(len(self.squash_quantiles) == 2 and 0 <= low < 0.5 < high <= 1,
                f"squash_quantiles must be [low, high] with 0 <= low < 0.5 < high <= 1, not "
                f"{list(self.squash_quantiles)}")
        require(self.squash_clip > 0, f"squash_clip must be positive, not {self.squash_clip}")
        try:
            self.token.format(index=1, name="reward")
        except (KeyError, IndexError, ValueError) as exc:
            raise SettingError(f"token {self.token!r} is not a format string over {{index}} and {{name}}: "
                               f"{exc}") from None


@dataclass
class SoupsConfig(Section):
    """Rewarded Soups: one model per objective, weight-averaged per preference."""

    k: int = 100
    """Each objective's model trains on the k samples with the highest reward on it (ingredient sft)."""
    ingredient: Literal["sft", "dpo"] = "sft"
    """How each objective's model is trained: SFT on its top-k samples, or plain DPO (no margin) on every
    preference pair of the data ordered by that objective's scores (the offline variant recent papers compare
    against)."""
    dpo: dict = field(default_factory=dict)
    """ingredient dpo: trl.DPOConfig fields over modpo.dpo (DEFAULT: none, so that DPO ingredients and MODPO share
    one DPO recipe: beta, steps, learning rate; their LoRA is train.lora + modpo.lora likewise)."""

    def check(self) -> None:
        require(self.k >= 1, f"k must be at least 1, not {self.k}")
        _require_beta(self.dpo)


@dataclass
class MorlhfConfig(Section):
    """MORLHF with RLOO instead of PPO (TRL 1.x has no PPO): one model per preference w, trained online on the
    scalar sum_i w_i r_i with a KL penalty to the base (trl.RLOOTrainer)."""

    preferences: list[int] | None = None
    """Which grid preferences to train, by index into the grid (None: all; the paper trained 5)."""
    prompts: int = 1000
    """Distinct training prompts the policy answers online, drawn from the training data."""
    normalise: Literal["none", "zscore"] = "zscore"
    """How each objective's reward is scaled before the weighting (DEFAULT zscore: (r - mean) / std with the offline
    scores' mean and std, so that w trades objectives of any scale and beta means the same on every task; none: the
    raw rewards, as RiC's MORLHF weights its reward models' outputs). Under RLOO a shift cancels in the
    leave-one-out baseline: only the scale changes training."""
    rloo: dict = field(default_factory=lambda: {"max_steps": 250, "per_device_train_batch_size": 16,
                                               "num_generations": 4, "learning_rate": 1.0e-5,
                                               "lr_scheduler_type": "constant", "beta": 0.05,
                                               "max_completion_length": 128, "temperature": 0.7, "top_p": 0.9,
                                               "top_k": 0})
    """Any trl.RLOOConfig field, over train.sft's transformers.TrainingArguments fields (precision, optimiser,
    checkpointing; SFT's own fields are left out). DEFAULT: 250 steps of 16 completions, 4 per prompt (RLOO's
    k = 4): 1000 prompts, one pass as in RiC's MORLHF; lr 1e-5 constant (RiC's MORLHF); beta 0.05 (TRL's default;
    must be > 0: it is the KL penalty to the base); 128 new tokens (RiC's assistant task); temperature 0.7, top-p
    0.9 (the paper's sampling). The run sets output_dir, seed, report_to, use_cpu and reward_weights (w)."""
    lora: dict = field(default_factory=dict)
    """peft.LoraConfig fields over train.lora (DEFAULT: train.lora, the adapter every other method trains)."""

    def check(self) -> None:
        require(self.prompts >= 1, f"prompts must be at least 1, not {self.prompts}")
        if self.preferences is not None:
            require(bool(self.preferences), "preferences is empty: list grid indices, or leave it unset for all")
            require(all(isinstance(i, int) and i >= 0 for i in self.preferences),
                    f"preferences must be grid indices (0, 1, ...), not {list(self.preferences)}")
            repeated = [i for i in self.preferences if list(self.preferences).count(i) > 1]
            require(not repeated, f"preferences lists index {repeated[0] if repeated else ''} twice")


MODPO_DPO_DEFAULTS = {"beta": 0.1, "learning_rate": 5.0e-6, "max_steps": 200, "lr_scheduler_type": "cosine",
                      "warmup_steps": 0.1, "weight_decay": 0.05}


def _require_beta(dpo: dict) -> None:
    beta = dpo.get("beta", 0.1)
    require(isinstance(beta, (int, float)) and not isinstance(beta, bool) and beta > 0,
            f"dpo.beta must be a number greater than 0, not {beta!r}")


@dataclass
class ModpoConfig(Section):
    """MODPO (Zhou et al.): per preference w, DPO on one objective's preference pairs with the other objectives'
    w-weighted reward differences as the margin (trl.DPOTrainer)."""

    objective: str | None = None
    """The objective whose preference pairs DPO trains on, each pair ordered by its scores (None: the first); the
    others give the margin."""
    margin_scale: Literal["raw", "std"] = "raw"
    """The other objectives' scores as margin rewards: raw (MODPO feeds its margin reward models' raw outputs), or
    divided by each objective's standard deviation over the scored samples, so that a weight means the same on
    every objective."""
    min_weight: float = 0.05
    """MODPO divides by w_0, the pair objective's weight, so it cannot train w_0 = 0: a preference with w_0 below
    this trains at w_0 = min_weight, its other weights scaled to sum to 1 - min_weight."""
    dpo: dict = field(default_factory=lambda: dict(MODPO_DPO_DEFAULTS))
    """trl.DPOConfig fields over the train.sft fields DPOConfig shares (batch size, precision, max_length, ...).
    DEFAULT: MODPO's beta 0.1, cosine schedule with 10% warmup and weight decay 0.05 (scripts/modpo of
    ZHZisZZ/modpo); learning rate 5e-6, since MODPO's 5e-4 is for LoRA r 64 with alpha 1 and the same size of
    weight update with train.lora's alpha/r = 2 takes about 4e-6 to 8e-6; 200 steps, the budget of a ParetoHqD
    stage-1 model."""
    lora: dict = field(default_factory=dict)
    """peft.LoraConfig fields over train.lora."""

    def check(self) -> None:
        require(0.0 < self.min_weight < 1.0, f"min_weight must be in (0, 1), not {self.min_weight}")
        _require_beta(self.dpo)

