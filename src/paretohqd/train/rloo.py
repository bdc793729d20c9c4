"""One online RL run: MORLHF with RLOO instead of PPO (TRL 1.x has no PPO). A base policy answers training prompts,
each completion is scored by every objective, and trl.RLOOTrainer maximises the scalar sum_i w_i r_i with a KL
penalty to the base (``beta`` > 0: the sequence's summed log-ratio to the base is subtracted from its reward; with
LoRA the base is the model with the adapter switched off).

Rewards reach TRL as one reward function per objective (:class:`ObjectiveReward`) with ``reward_weights`` = w, so
TRL itself forms sum_i w_i r_i and logs every objective's mean reward. Each function scores the *raw* prompt (the
stored HH-RLHF-format text, as the offline scores did) and the completion cut at the next turn marker exactly as
held-out generation cuts it; an optional per-objective transform (e.g. a z-score against the offline scores)
applies before the weighting. Prompts reach the policy through the policy's chat template and left-truncation
(``model.max_prompt_length``), the same rule SFT training and generation use. Every ``trl.RLOOConfig`` and
``peft.LoraConfig`` field passes through; the run sets its output folder, seeds, reporting, device and the reward
weights. The model is written like an SFT model (staging folder renamed into place, ``training.json``, card).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..policy import Policy
from ..policy.generation import clean_response
from ..tracking import NO_TRACKING, Tracking, tracked
from .cards import ModelCard
from .common import (
    check_lora_settings,
    check_trainer_settings,
    model_label,
    save_trained_model,
    start_run,
    train_and_record,
)
from .sft import COSMETIC_SFT_FIELDS, OWNED_SFT_FIELDS, RUN_OWNED_SOURCE, plan_training, split_settings

# RLOOConfig fields the run decides itself, and where each value comes from.
OWNED_RLOO_FIELDS = {**dict.fromkeys(OWNED_SFT_FIELDS, RUN_OWNED_SOURCE),
                     "reward_weights": "from the preference's weights",
                     "remove_unused_columns": "the reward functions read the prompts' context columns",
                     "chat_template_kwargs": "prompts go through the policy's chat template, as in generation"}
# RLOOConfig fields that cannot change the trained weights: left out of every unit key.
COSMETIC_RLOO_FIELDS = (*COSMETIC_SFT_FIELDS, "log_completions", "log_multimodal", "num_completions_to_print",
                        "log_unique_prompts")
# The dataset column that carries the stored prompt text to the reward functions (TRL's "prompt" is the messages).
RAW_PROMPT_COLUMN = "_paretohqd_prompt"
# Keyword arguments TRL adds to a reward function's call that are not dataset columns.
TRL_REWARD_EXTRAS = ("trainer_state", "log_extra", "log_metric")


class ObjectiveReward:
    """One objective as a TRL reward function: one float per completion, on the raw prompt and the cleaned
    completion (and the prompt's context columns, which objectives such as a summary's ``post`` read).

    ``score``: the objective's scores of such a sample table (training knows no reward models: the caller binds
    one); ``transform``: applied to the raw scores before TRL weights them (None: raw rewards)."""

    def __init__(self, name: str, score: Callable[[pd.DataFrame], np.ndarray],
                 transform: Callable[[np.ndarray], np.ndarray] | None = None):
        self.__name__ = name  # TRL logs rewards/<name>/mean under it
        self.score_table = score
        self.transform = transform

    def __call__(self, prompts: list, completions: list, completion_ids=None, **columns) -> list[float]:
        return self.score(completion_frame(prompts, completions, columns)).tolist()

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        scores = np.asarray(self.score_table(frame), dtype=np.float64)
        return scores if self.transform is None else np.asarray(self.transform(scores), dtype=np.float64)


def completion_frame(prompts: list, completions: list, columns: dict) -> pd.DataFrame:
    """The sample table objectives score (id, prompt, response, context columns) for one batch of completions:
    TRL gives conversational completions as [{"role": "assistant", "content": ...}] and the dataset's other
    columns as keyword lists."""
    count = len(completions)
    table = {key: list(values) for key, values in columns.items()
             if key not in TRL_REWARD_EXTRAS and isinstance(values, (list, tuple)) and len(values) == count}
    raw = table.pop(RAW_PROMPT_COLUMN, None)
    if raw is None:  # plain-text prompts given directly: they are the stored prompts
        raw = list(prompts)
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    ids = table.pop("prompt_id", None) or [f"p{j}" for j in range(count)]
    frame = pd.DataFrame({"id": [f"{pid}:{j}" for j, pid in enumerate(ids)], "prompt": raw,
                          "response": [clean_response(t) for t in texts]})
    for key, values in table.items():
        if key not in frame.columns:
            frame[key] = values
    return frame


def prompt_dataset(prompts: pd.DataFrame, policy: Policy):
    """TRL's prompts (the policy's chat messages of each truncated prompt, or its plain text for a model without a
    chat template) with the stored prompt and the context columns beside them."""
    import datasets

    rows = []
    for record in prompts.to_dict(orient="records"):
        raw = record.pop("prompt")
        rows.append({"prompt": policy.trainer_prompt(raw), RAW_PROMPT_COLUMN: raw, **record})
    return datasets.Dataset.from_list(rows)


def check_rloo_settings(rloo_layers: list[tuple[str, dict]], lora_layers: list[tuple[str, dict]] | None,
                        use_cpu: bool = True) -> None:
    """Names and values checked against trl.RLOOConfig and peft.LoraConfig, and beta > 0, before any work."""
    from trl import RLOOConfig

    rloo = check_trainer_settings(RLOOConfig, rloo_layers, OWNED_RLOO_FIELDS, use_cpu)
    beta = rloo.get("beta", RLOOConfig.beta)
    if not (isinstance(beta, (int, float)) and beta > 0):
        raise UserError(f"{rloo_layers[-1][0]}.beta must be greater than 0 (the KL penalty to the base model that "
                        f"makes this MORLHF), not {beta!r}")
    check_lora_settings(lora_layers)


def split_rloo_settings(rloo: dict) -> tuple[dict, dict]:
    """(the RLOOConfig fields that can change the trained weights: what a training unit's key holds; the rest)."""
    return split_settings(rloo, COSMETIC_RLOO_FIELDS)


def rloo_run_settings(rloo: dict, weights: Sequence[float]) -> dict:
    """The RLOOConfig fields of one run: the pass-through ones plus the reward weights and the columns the reward
    functions read."""
    return {**rloo, "reward_weights": [float(w) for w in weights], "remove_unused_columns": False}


def train_rloo(prompts: pd.DataFrame, output_dir: Path, model_config, rloo: dict, lora: dict | None, seed: int,
               rewards: Sequence[ObjectiveReward], weights: Sequence[float], tracking: Tracking = NO_TRACKING,
               card: ModelCard | None = None, log: Callable[[str], None] = print, progress: bool = True,
               facts: dict | None = None, checkpoint_identity: str | None = None) -> dict:
    """Train one model from the base on ``prompts`` (columns prompt, prompt_id and context columns) and save it to
    ``output_dir``; ``rewards``: one per objective, weighted by ``weights``; ``lora`` None is full fine-tuning.
    ``facts``: what the caller adds to ``training.json`` (e.g. the reward normalisation)."""
    from trl import RLOOConfig, RLOOTrainer

    if len(rewards) != len(weights):
        raise ValueError(f"{len(rewards)} reward functions but {len(weights)} weights")
    output_dir = Path(output_dir)
    staging, args, model, tokenizer, policy, peft_config = start_run(
        RLOOConfig, rloo_run_settings(rloo, weights), output_dir, seed, tracking, model_config, lora, None, progress,
        checkpoint_identity)
    # TRL stops a completion at every eos id the model's generation config declares: the end-of-turn token too.
    model.generation_config.eos_token_id = policy.end_of_turn_ids
    dataset = prompt_dataset(prompts, policy)
    plan = plan_training(len(dataset) * args.num_generations, rloo, args.world_size)
    log(plan.announce(output_dir, args.world_size, "completions") + f" ({len(dataset)} prompts x "
        f"{args.num_generations}), beta {args.beta}, reward weights "
        + ", ".join(f"{r.__name__} {w:.3g}" for r, w in zip(rewards, weights)))
    with tracked(tracking):
        trainer = RLOOTrainer(model=model, reward_funcs=list(rewards), args=args, train_dataset=dataset,
                              processing_class=tokenizer, peft_config=peft_config)
        stats = train_and_record(trainer, plan, seed, lora, None, facts={
            "num_prompts": len(dataset), "num_generations": args.num_generations, "beta": args.beta,
            "rewards": [r.__name__ for r in rewards], "reward_weights": list(args.reward_weights),
            "max_completion_length": args.max_completion_length, "temperature": args.temperature,
            "top_p": args.top_p, "top_k": args.top_k, **(facts or {})}, label=model_label(card, output_dir))
    save_trained_model(trainer, policy, staging, output_dir, stats, card, model_config.name_or_path, lora is not None)
    return stats
