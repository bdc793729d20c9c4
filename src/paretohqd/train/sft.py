"""One SFT run: a base policy (or a previous stage's model) fine-tuned on one set of samples with trl.SFTTrainer.

The loss is on response tokens only (the policy tokenizes conversational prompt-completion samples exactly as TRL
does and marks the completion), the chat template closes every response with the end-of-turn token so the model
learns to stop, and the generation config saved with the model names that token. Every ``trl.SFTConfig`` and
``peft.LoraConfig`` field passes through; the run sets only its output folder, seeds, reporting and device. Each
run writes into a temporary folder that is renamed into place when complete: a crash never leaves a model that
looks finished.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..data import TRUNCATED
from ..errors import UserError
from ..tracking import NO_TRACKING, Tracking, tracked
from .cards import ModelCard
from .common import (  # noqa: F401
    COMPLETE_MARKER,
    TRAINING_ARGS_FILE,
    check_lora_settings,
    check_trainer_settings,
    model_label,
    save_trained_model,
    start_run,
    train_and_record,
)

# SFTConfig fields the run decides itself (every trainer's config has them), and where their values come from.
OWNED_SFT_FIELDS = ("output_dir", "seed", "data_seed", "report_to", "use_cpu", "disable_tqdm", "run_name",
                    "logging_dir")
RUN_OWNED_SOURCE = ("from the run directory, the unit's name (its run in the trackers' group), seed, report_to and "
                    "model.device")
# SFTConfig fields that cannot change the trained weights: left out of every unit key.
COSMETIC_SFT_FIELDS = ("logging_steps", "logging_strategy", "logging_first_step", "logging_nan_inf_filter",
                       "log_level", "log_level_replica", "log_on_each_node", "save_strategy", "save_steps",
                       "save_total_limit", "save_only_model", "dataloader_num_workers",
                       "dataloader_pin_memory", "dataloader_prefetch_factor", "dataloader_persistent_workers",
                       "include_num_input_tokens_seen", "skip_memory_metrics", "overwrite_output_dir")


@dataclass
class TrainingPlan:
    """What a run will do, printed before it starts (TRL users ask for global batch, steps and epochs)."""

    num_samples: int
    global_batch_size: int
    steps: int
    epochs: float

    def describe(self, unit: str = "samples") -> str:
        return (f"{self.num_samples} {unit}, global batch {self.global_batch_size}, {self.steps} optimizer steps "
                f"= {self.epochs:.2f} epochs")

    def announce(self, output_dir: Path, world_size: int, unit: str = "samples") -> str:
        """The line a run logs before it starts."""
        return (f"train {Path(output_dir).parent.name}/{Path(output_dir).name}: {self.describe(unit)}"
                + (f" ({world_size} processes)" if world_size > 1 else ""))


def plan_training(num_samples: int, sft: dict, world_size: int = 1) -> TrainingPlan:
    global_batch = sft.get("per_device_train_batch_size", 8) * sft.get("gradient_accumulation_steps", 1) * world_size
    steps_per_epoch = max(1, math.ceil(num_samples / global_batch))
    steps = sft.get("max_steps", -1)
    if steps > 0:
        return TrainingPlan(num_samples, global_batch, steps, steps / steps_per_epoch)
    epochs = sft.get("num_train_epochs", 3.0)
    return TrainingPlan(num_samples, global_batch, max(1, math.ceil(epochs * steps_per_epoch)), epochs)


def finished_replies(samples: pd.DataFrame, truncated_replies: str) -> tuple[pd.DataFrame, list[bool]]:
    """(the samples to train on, whether each reply is finished) under ``train.truncated_replies``."""
    if TRUNCATED not in samples.columns:
        return samples, [True] * len(samples)
    truncated = samples[TRUNCATED].fillna(False).to_numpy(dtype=bool)
    if truncated_replies == "drop":
        return samples[~truncated].reset_index(drop=True), [True] * int((~truncated).sum())
    return samples, (~truncated).tolist()


def split_settings(sft: dict, cosmetic: tuple[str, ...] = COSMETIC_SFT_FIELDS) -> tuple[dict, dict]:
    """(the SFTConfig fields that can change the trained weights: what a training unit's key holds; the rest).
    ``cosmetic``: the fields that cannot (the TrainingArguments ones by default; another trainer adds its own)."""
    return ({key: value for key, value in sft.items() if key not in cosmetic},
            {key: value for key, value in sft.items() if key in cosmetic})


def check_training_settings(sft_layers: list[tuple[str, dict]], lora_layers: list[tuple[str, dict]] | None,
                            use_cpu: bool = True) -> None:
    """Names and values checked against trl.SFTConfig and peft.LoraConfig themselves, before any work.

    ``*_layers``: (config key, mapping) in the order they are merged, so that a bad name points at its key."""
    from trl import SFTConfig

    check_trainer_settings(SFTConfig, sft_layers, dict.fromkeys(OWNED_SFT_FIELDS, RUN_OWNED_SOURCE), use_cpu)
    check_lora_settings(lora_layers)


def train_model(samples: pd.DataFrame, output_dir: Path, model_config, sft: dict, lora: dict | None, seed: int,
                init_from: Path | None = None, tracking: Tracking = NO_TRACKING, card: ModelCard | None = None,
                log: Callable[[str], None] = print, progress: bool = True, truncated_replies: str = "open",
                checkpoint_identity: str | None = None) -> dict:
    """Fine-tune and save to ``output_dir`` (adapter or full weights, tokenizer, generation config, card).

    ``lora`` None is full fine-tuning; ``init_from`` continues a previous stage's model (its adapter, or its full
    weights); ``tracking``: where training reports (``report_to``). ``samples``' optional boolean column
    ``truncated`` marks replies cut at a token limit:
    ``truncated_replies`` ``open`` trains on them without the end-of-turn token, ``drop`` leaves them out."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    output_dir = Path(output_dir)
    staging, args, model, tokenizer, policy, peft_config = start_run(
        SFTConfig, sft, output_dir, seed, tracking, model_config, lora, init_from, progress, checkpoint_identity)
    max_length = sft.get("max_length", 1024)
    samples, finished = finished_replies(samples, truncated_replies)
    if samples.empty:
        raise UserError(f"train {Path(output_dir).name}: every training reply was cut at a token limit and "
                        "train.truncated_replies is 'drop': nothing is left to train on (raise the generation's "
                        "max_new_tokens, or set it to 'open')")
    dataset = datasets.Dataset.from_list([policy.encode_for_training(p, r, max_length, f)
                                          for p, r, f in zip(samples["prompt"], samples["response"], finished)])
    plan = plan_training(len(dataset), sft, args.world_size)
    log(plan.announce(output_dir, args.world_size))
    with tracked(tracking):
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                             peft_config=peft_config)
        stats = train_and_record(trainer, plan, seed, lora, init_from, label=model_label(card, output_dir))
    save_trained_model(trainer, policy, staging, output_dir, stats, card, model_config.name_or_path, lora is not None)
    return stats
