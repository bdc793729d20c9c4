"""One SFT run: a base policy (or a previous stage's adapter) fine-tuned on one preference's selected samples.

The loss is on response tokens only (conversational prompt-completion data: TRL masks the prompt), the chat
template closes every response with the end-of-turn token so the model learns to stop, and the generation config
saved with the model names that token. Each run writes into a temporary folder that is renamed into place when
complete: a crash never leaves a model that looks finished.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from .. import io
from ..config import ModelConfig, TrainConfig
from ..data import prompt_to_messages

COMPLETE_MARKER = ".complete"


@dataclass
class TrainingPlan:
    """What a run will do, printed before it starts (TRL users ask for global batch, steps and epochs)."""

    num_samples: int
    global_batch_size: int
    steps: int
    epochs: float

    def describe(self) -> str:
        return (f"{self.num_samples} samples, global batch {self.global_batch_size}, {self.steps} optimizer steps "
                f"= {self.epochs:.2f} epochs")


@dataclass
class ModelCard:
    """What a method says about one trained model; :func:`train_model` adds the base model, the training facts and
    the front matter, so every method's card has the same shape."""

    title: str
    tags: list[str]
    facts: list[str]

    def render(self, model_config: ModelConfig, train: TrainConfig, stats: dict) -> str:
        library = "peft" if train.use_lora else "transformers"
        lines = ["---", f"library_name: {library}", f"base_model: {model_config.name_or_path}",
                 f"tags: [{', '.join(['paretohqd', *self.tags])}]", "---", "", f"# {self.title}", "",
                 f"- base model: `{model_config.name_or_path}`", *(f"- {fact}" for fact in self.facts),
                 f"- training: {stats['steps']} steps, global batch {stats['global_batch_size']}, "
                 f"{stats['epochs']:.2f} epochs, learning rate {stats['learning_rate']}, LoRA {train.use_lora}, "
                 f"final train loss {stats['train_loss']:.4f}, {stats['seconds']:.0f} s",
                 "", "Made with paretohqd.", ""]
        return "\n".join(lines)


def plan_training(num_samples: int, train: TrainConfig, stage: str, world_size: int = 1) -> TrainingPlan:
    global_batch = train.per_device_batch_size * train.gradient_accumulation_steps * world_size
    steps_per_epoch = max(1, math.ceil(num_samples / global_batch))
    steps = getattr(train, f"{stage}_steps")
    if steps > 0:
        return TrainingPlan(num_samples, global_batch, steps, steps / steps_per_epoch)
    epochs = getattr(train, f"{stage}_epochs")
    return TrainingPlan(num_samples, global_batch, max(1, math.ceil(epochs * steps_per_epoch)), epochs)


def is_complete(path: Path, unit_hash: str | None = None) -> bool:
    """A saved model is complete when its marker exists (and names the settings hash, when one is given)."""
    marker = Path(path) / COMPLETE_MARKER
    return marker.exists() and (unit_hash is None or marker.read_text().strip() == unit_hash)


def truncate_prompt(prompt: str, tokenizer, max_tokens: int) -> str:
    """Keep the end of an over-long prompt: the last turns are what the response answers."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return prompt
    return tokenizer.decode(ids[-max_tokens:])


def sft_dataset(samples: pd.DataFrame, tokenizer, model_config: ModelConfig, max_length: int):
    """Conversational prompt-completion records: TRL applies the chat template and masks the prompt."""
    import datasets

    max_prompt_tokens = max(16, max_length * 3 // 4)
    records = [{"prompt": prompt_to_messages(truncate_prompt(p, tokenizer, max_prompt_tokens),
                                             model_config.system_prompt),
                "completion": [{"role": "assistant", "content": r}]}
               for p, r in zip(samples["prompt"], samples["response"])]
    return datasets.Dataset.from_list(records)


def end_of_turn_ids(tokenizer) -> list[int]:
    """Token ids that end an assistant turn: eos, and the chat template's end-of-turn token when it differs."""
    ids = [tokenizer.eos_token_id]
    for token in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id and token_id not in ids:
            ids.append(token_id)
    return [i for i in ids if i is not None]


def train_model(samples: pd.DataFrame, output_dir: Path, model_config: ModelConfig, train: TrainConfig,
                stage: str, seed: int, unit_hash: str = "", init_from: Path | None = None, report_to: str = "none",
                card: ModelCard | None = None, log: Callable[[str], None] = print) -> dict:
    """Fine-tune and save to ``output_dir`` (adapter or full weights, tokenizer, generation config, card)."""
    import torch
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    from ..models import load_causal_lm

    output_dir = Path(output_dir)
    staging = output_dir.with_name(output_dir.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)  # leftovers of an interrupted run: that unit starts over
    set_seed(seed)
    # Stage 2 of full fine-tuning continues from the stage-1 weights; LoRA stages always start from the base.
    full_continuation = init_from is not None and not train.use_lora
    model, tokenizer = load_causal_lm(str(init_from) if full_continuation else model_config.name_or_path,
                                      model_config.dtype)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    peft_config = None
    if init_from is not None and train.use_lora:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(init_from), is_trainable=True)
    elif init_from is None and train.use_lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=train.lora_r, lora_alpha=train.lora_alpha, lora_dropout=train.lora_dropout,
                                 target_modules=train.lora_target_modules, task_type="CAUSAL_LM")
    dataset = sft_dataset(samples, tokenizer, model_config, train.max_length)
    plan = plan_training(len(dataset), train, stage, int(os.environ.get("WORLD_SIZE", "1")))
    log(f"train {output_dir.parent.name}/{output_dir.name}: {plan.describe()}")
    learning_rate = train.stage2_learning_rate if stage == "stage2" and train.stage2_learning_rate else \
        train.learning_rate
    args = SFTConfig(
        output_dir=str(staging / "trainer"), max_steps=plan.steps, per_device_train_batch_size=train.per_device_batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps, learning_rate=learning_rate,
        lr_scheduler_type=train.lr_scheduler_type, warmup_steps=train.warmup_steps, weight_decay=train.weight_decay,
        max_length=train.max_length, completion_only_loss=True, bf16=train.bf16,
        use_cpu=not torch.cuda.is_available(), logging_steps=train.logging_steps, save_strategy="no",
        report_to=report_to, seed=seed, data_seed=seed, disable_tqdm=os.environ.get("PARETOHQD_PROGRESS") == "0",
        dataloader_num_workers=0, dataset_num_proc=None,
        # TRL turns activation checkpointing on by default; it only pays off when memory is the limit.
        activation_checkpointing=train.gradient_checkpointing)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=peft_config)
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    trained = trainer.model
    generation_config = trained.generation_config
    generation_config.eos_token_id = end_of_turn_ids(tokenizer)
    generation_config.pad_token_id = tokenizer.pad_token_id
    trained.save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))
    generation_config.save_pretrained(str(staging))
    shutil.rmtree(staging / "trainer", ignore_errors=True)
    stats = {"stage": stage, "num_samples": plan.num_samples, "global_batch_size": plan.global_batch_size,
             "steps": plan.steps, "epochs": plan.epochs, "learning_rate": learning_rate,
             "train_loss": float(result.training_loss), "seconds": seconds, "seed": seed,
             "lora": train.use_lora, "init_from": str(init_from) if init_from else None,
             "log_history": trainer.state.log_history}
    io.write_json(staging / "training.json", stats)
    if card is not None:
        io.write_text(staging / "README.md", card.render(model_config, train, stats))
    io.write_text(staging / COMPLETE_MARKER, unit_hash + "\n")
    if output_dir.exists():
        shutil.rmtree(output_dir)
    os.replace(staging, output_dir)
    return stats


def load_trained(path: Path, model_config: ModelConfig, dtype: str | None = None):
    """(model, tokenizer) of a saved stage: a LoRA adapter is merged into a fresh copy of the base."""
    from ..models import load_causal_lm

    path = Path(path)
    if (path / "adapter_config.json").exists():
        from peft import PeftModel

        base, _ = load_causal_lm(model_config.name_or_path, dtype or model_config.dtype)
        model = PeftModel.from_pretrained(base, str(path)).merge_and_unload()
        from transformers import AutoTokenizer, GenerationConfig

        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model.generation_config = GenerationConfig.from_pretrained(str(path))
        return model, tokenizer
    return load_causal_lm(str(path), dtype or model_config.dtype)

