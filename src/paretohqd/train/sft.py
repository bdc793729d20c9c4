"""One SFT run: a base policy (or a previous stage's model) fine-tuned on one set of samples with trl.SFTTrainer.

The loss is on response tokens only (the policy tokenizes conversational prompt-completion samples exactly as TRL
does and marks the completion), the chat template closes every response with the end-of-turn token so the model
learns to stop, and the generation config saved with the model names that token. Every ``trl.SFTConfig`` and
``peft.LoraConfig`` field passes through; the run sets only its output folder, seeds, reporting and device. Each
run writes into a temporary folder that is renamed into place when complete: a crash never leaves a model that
looks finished.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from .. import io
from ..config import did_you_mean
from ..errors import UserError
from ..policy import Policy, load_causal_lm, resolve_device
from .cards import ModelCard

COMPLETE_MARKER = ".complete"
TRAINING_ARGS_FILE = "training_args.bin"  # what Trainer.save_model adds beside the weights
# SFTConfig fields the run decides itself.
OWNED_SFT_FIELDS = ("output_dir", "seed", "data_seed", "report_to", "use_cpu", "disable_tqdm")
# SFTConfig fields that cannot change the trained weights: left out of every unit key.
COSMETIC_SFT_FIELDS = ("logging_steps", "logging_strategy", "logging_first_step", "logging_dir",
                       "logging_nan_inf_filter", "log_level", "log_level_replica", "log_on_each_node", "run_name",
                       "save_strategy", "save_steps", "save_total_limit", "save_only_model", "push_to_hub",
                       "hub_model_id", "hub_strategy", "hub_token", "hub_private_repo", "dataloader_num_workers",
                       "dataloader_pin_memory", "dataloader_prefetch_factor", "dataloader_persistent_workers",
                       "include_num_input_tokens_seen", "skip_memory_metrics", "overwrite_output_dir")


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


def plan_training(num_samples: int, sft: dict, world_size: int = 1) -> TrainingPlan:
    global_batch = sft.get("per_device_train_batch_size", 8) * sft.get("gradient_accumulation_steps", 1) * world_size
    steps_per_epoch = max(1, math.ceil(num_samples / global_batch))
    steps = sft.get("max_steps", -1)
    if steps > 0:
        return TrainingPlan(num_samples, global_batch, steps, steps / steps_per_epoch)
    epochs = sft.get("num_train_epochs", 3.0)
    return TrainingPlan(num_samples, global_batch, max(1, math.ceil(epochs * steps_per_epoch)), epochs)


def split_settings(sft: dict) -> tuple[dict, dict]:
    """(the SFTConfig fields that can change the trained weights: what a training unit's key holds; the rest)."""
    return ({key: value for key, value in sft.items() if key not in COSMETIC_SFT_FIELDS},
            {key: value for key, value in sft.items() if key in COSMETIC_SFT_FIELDS})


def check_training_settings(sft_layers: list[tuple[str, dict]], lora_layers: list[tuple[str, dict]] | None,
                            use_cpu: bool = True) -> None:
    """Names and values checked against trl.SFTConfig and peft.LoraConfig themselves, before any work.

    ``*_layers``: (config key, mapping) in the order they are merged, so that a bad name points at its key."""
    from peft import LoraConfig
    from trl import SFTConfig

    for where, layer in sft_layers:
        _check_fields(SFTConfig, layer, where, "trl.SFTConfig")
        owned = [key for key in layer if key in OWNED_SFT_FIELDS]
        if owned:
            raise UserError(f"{where}.{owned[0]} is set by the run itself (from the run directory, seed, report_to "
                            "and model.device); remove it")
    sft = {key: value for _, layer in sft_layers for key, value in layer.items()}
    keys = " + ".join(where for where, _ in sft_layers)
    with tempfile.TemporaryDirectory() as scratch:
        try:
            SFTConfig(**sft, output_dir=scratch, use_cpu=use_cpu, report_to="none")
        except (TypeError, ValueError) as exc:
            raise UserError(f"{keys} is not a valid trl.SFTConfig: {str(exc).splitlines()[0]}") from None
    if lora_layers is not None:
        for where, layer in lora_layers:
            _check_fields(LoraConfig, layer, where, "peft.LoraConfig")
        lora = {key: value for _, layer in lora_layers for key, value in layer.items()}
        try:
            LoraConfig(**lora, task_type="CAUSAL_LM")
        except (TypeError, ValueError) as exc:
            raise UserError(f"{' + '.join(w for w, _ in lora_layers)} is not a valid peft.LoraConfig: "
                            f"{str(exc).splitlines()[0]}") from None


def _check_fields(cls, values: dict, where: str, owner: str) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in names:
            raise UserError(f"{where}.{key} is not a {owner} field{did_you_mean(key, names)}")


def train_model(samples: pd.DataFrame, output_dir: Path, model_config, sft: dict, lora: dict | None, seed: int,
                init_from: Path | None = None, report_to: str = "none", card: ModelCard | None = None,
                log: Callable[[str], None] = print, progress: bool = True) -> dict:
    """Fine-tune and save to ``output_dir`` (adapter or full weights, tokenizer, generation config, card).

    ``lora`` None is full fine-tuning; ``init_from`` continues a previous stage's model (its adapter, or its full
    weights)."""
    import datasets
    from accelerate.utils import gather_object
    from transformers import set_seed
    from transformers.integrations import unset_hf_deepspeed_config
    from trl import SFTConfig, SFTTrainer

    output_dir = Path(output_dir)
    staging = output_dir.with_name(output_dir.name + ".partial")
    # The arguments come first, as in trl's scripts: they set up the processes of a launch (the Trainer then trains
    # data-parallel over all of them: DDP, DeepSpeed or FSDP, as the accelerate config says; only the main process
    # writes files), and under ZeRO-3 the model must be loaded after them to be sharded as it loads.
    args = SFTConfig(**sft, output_dir=str(staging / "trainer"), seed=seed, data_seed=seed, report_to=report_to,
                     use_cpu=resolve_device(model_config.device) == "cpu", disable_tqdm=not progress)
    main_process = args.process_index == 0
    if main_process and staging.exists():
        shutil.rmtree(staging)  # leftovers of an interrupted run: that unit starts over
    set_seed(seed)
    # Full fine-tuning continues from the previous stage's weights; LoRA stages always start from the base.
    full_continuation = init_from is not None and lora is None
    model, tokenizer = load_causal_lm(str(init_from) if full_continuation else model_config.name_or_path,
                                      model_config.dtype, None if full_continuation else model_config.revision,
                                      model_config.device_map)
    policy = Policy(model, tokenizer, model_config.system_prompt, model_config.max_prompt_length)
    peft_config = None
    if init_from is not None and lora is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(init_from), is_trainable=True)
    elif lora is not None:
        from peft import LoraConfig

        peft_config = LoraConfig(**lora, task_type="CAUSAL_LM")
    max_length = sft.get("max_length", 1024)
    dataset = datasets.Dataset.from_list([policy.encode_for_training(p, r, max_length)
                                          for p, r in zip(samples["prompt"], samples["response"])])
    plan = plan_training(len(dataset), sft, args.world_size)
    log(f"train {output_dir.parent.name}/{output_dir.name}: {plan.describe()}"
        + (f" ({args.world_size} processes)" if args.world_size > 1 else ""))
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=peft_config)
    seen = _BatchCounter(trainer.model)
    started = time.perf_counter()
    try:
        result = trainer.train()
    finally:
        seen.remove()
    seconds = time.perf_counter() - started
    # What each process trained on, in rank order: the evidence that every process of a launch took part.
    ranks = gather_object([{"rank": args.process_index, "steps": trainer.state.global_step,
                            "micro_batches": seen.batches, "sequences": seen.sequences}])
    trained = trainer.model
    generation_config = trained.generation_config
    generation_config.eos_token_id = policy.end_of_turn_ids
    generation_config.pad_token_id = tokenizer.pad_token_id
    # Every process takes part in saving (ZeRO-3 and FSDP gather the sharded weights); only the main one writes.
    trainer.save_model(str(staging))
    stats = {"num_samples": plan.num_samples, "global_batch_size": plan.global_batch_size, "steps": plan.steps,
             "epochs": plan.epochs, "learning_rate": args.learning_rate, "train_loss": float(result.training_loss),
             "seconds": seconds, "seed": seed, "lora": lora is not None,
             "init_from": str(init_from) if init_from else None, "world_size": args.world_size, "ranks": ranks,
             "log_history": trainer.state.log_history}
    if main_process:
        (staging / TRAINING_ARGS_FILE).unlink(missing_ok=True)  # the Trainer's pickle: training.json says it all
        tokenizer.save_pretrained(str(staging))
        generation_config.save_pretrained(str(staging))
        shutil.rmtree(staging / "trainer", ignore_errors=True)
        io.write_json(staging / "training.json", stats)
        if card is not None:
            io.write_text(staging / "README.md", card.render(model_config.name_or_path, lora is not None, stats))
        io.write_text(staging / COMPLETE_MARKER, "ok\n")
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(staging, output_dir)
    trainer.accelerator.wait_for_everyone()  # no process reads the model before it is in place
    # Under ZeRO-3 the launch's DeepSpeed config outlives the Trainer and would make every later from_pretrained
    # (generation, reward models) load sharded weights, which each process's own batches cannot run on.
    unset_hf_deepspeed_config()
    return stats


class _BatchCounter:
    """Counts the micro-batches and sequences this process's model is given during training (a forward pre-hook:
    one call per micro-batch, whatever wraps the model for DDP, DeepSpeed or FSDP)."""

    def __init__(self, model):
        self.batches = 0
        self.sequences = 0
        self.handle = model.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs) -> None:
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        self.batches += 1
        self.sequences += int(input_ids.shape[0]) if input_ids is not None else 0

    def remove(self) -> None:
        self.handle.remove()
