"""What every training run shares, whichever trl trainer it uses (SFT, RLOO, DPO): its settings checked against the
trainer's config class and peft.LoraConfig before any work, and how a finished model is written.

A run writes into a staging folder that is renamed into place when complete, with a ``.complete`` marker: a crash
never leaves a model that looks finished. Beside the weights go the tokenizer, a generation config whose eos is the
chat template's end-of-turn token (so the model stops where it learned to), ``training.json`` and a model card.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import tempfile
import time
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path

from .. import io
from ..config import did_you_mean
from ..errors import UserError
from ..policy import Policy, load_causal_lm, on_device, resolve_device
from ..tracking import Tracking, trainer_fields
from .cards import ModelCard

COMPLETE_MARKER = ".complete"
TRAINING_ARGS_FILE = "training_args.bin"  # what Trainer.save_model adds beside the weights

Layers = Sequence[tuple[str, Mapping]]


EARLIER_NAMES = {"activation_checkpointing": "gradient_checkpointing",
                 "activation_checkpointing_kwargs": "gradient_checkpointing_kwargs"}
"""transformers 5 renamed these TrainingArguments fields; trl 1.x still runs on transformers 4.56 (a vLLM-pinned
install may have it), whose configs know only the earlier names. Settings keep the new names (and so the keys)."""


def for_installed(cls, settings: Mapping) -> dict:
    """``settings`` under the names the installed ``cls`` has: a field it lacks under its transformers-5 name goes
    by its earlier one."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {EARLIER_NAMES[key] if key not in names and EARLIER_NAMES.get(key) in names else key: value
            for key, value in settings.items()}


def check_fields(cls, values: Mapping, where: str, owner: str) -> None:
    """Every key a field of ``cls``, and every value of the type the field declares where that is a plain number,
    flag or string (the library's own ``__post_init__`` checks values, not types: text where a number goes fails
    only once training starts)."""
    values = for_installed(cls, values)
    names = [f.name for f in dataclasses.fields(cls)]
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if key not in names:
            raise UserError(f"{where}.{key} is not a {owner} field{did_you_mean(key, names)}")
        allowed = _plain_types(hints.get(key))
        if allowed and not _is_instance(value, allowed):
            names_of = " or ".join(sorted({"none" if t is type(None) else t.__name__ for t in allowed}))
            raise UserError(f"{where}.{key} must be {names_of} ({owner}), not {value!r}")


PLAIN = (bool, int, float, str, type(None))


def _plain_types(hint) -> tuple[type, ...] | None:
    """The types a field takes when each is plain (``int``, ``float | None``, ``bool``); None for anything else
    (enums, lists, dicts, which the library checks itself)."""
    if hint is None:
        return None
    members = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return tuple(members) if all(member in PLAIN for member in members) else None


def _is_instance(value, allowed: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int) and float in allowed:
        return True
    return isinstance(value, allowed)


def check_trainer_settings(config_class, layers: Layers, owned: Mapping[str, str], use_cpu: bool = True) -> dict:
    """The merged ``layers`` ((config key, mapping) in the order they are merged, so that a bad name points at its
    key), checked against the trl config class itself before any work; ``owned``: the fields the run sets itself,
    each with where its value comes from."""
    owner = f"trl.{config_class.__name__}"
    for where, layer in layers:
        refuse_hub_settings(layer, where)
        check_fields(config_class, layer, where, owner)
        taken = [key for key in layer if key in owned]
        if taken:
            raise UserError(f"{where}.{taken[0]} is set by the run itself ({owned[taken[0]]}); remove it")
    settings = {key: value for _, layer in layers for key, value in layer.items()}
    with tempfile.TemporaryDirectory() as scratch:
        try:
            config_class(**for_installed(config_class, settings), output_dir=scratch, use_cpu=use_cpu,
                         report_to="none")
        except (TypeError, ValueError) as exc:
            raise UserError(f"{' + '.join(w for w, _ in layers)} is not a valid {owner}: "
                            f"{str(exc).splitlines()[0]}") from None
    return settings


def is_hub_setting(key: str) -> bool:
    """A trainer field that pushes to the Hugging Face Hub (``push_to_hub``, ``hub_model_id``, ``hub_strategy``,
    ``hub_token``, ``hub_private_repo``, ``hub_always_push``, ``hub_revision``, ``push_to_hub_*``)."""
    return key == "push_to_hub" or key.startswith(("hub_", "push_to_hub_"))


def refuse_hub_settings(layer: Mapping, where: str) -> None:
    """The trainer never pushes: every preference's model would go to one repo (the trainer names it after its
    scratch folder) with the trainer's card. A finished run is published whole by ``paretohqd push``."""
    for key in layer:
        if is_hub_setting(key):
            raise UserError(f"{where}.{key}: the trainer does not push to the Hub (it would push every preference's "
                            "model to one repo named after a scratch folder); remove it, and once the run is "
                            "finished publish it with `paretohqd push RUN --repo-prefix ORG/name`")


def check_lora_settings(lora_layers: Layers | None) -> None:
    """``lora_layers`` (None: full fine-tuning) checked against peft.LoraConfig itself."""
    if lora_layers is None:
        return
    from peft import LoraConfig

    for where, layer in lora_layers:
        check_fields(LoraConfig, layer, where, "peft.LoraConfig")
    lora = {key: value for _, layer in lora_layers for key, value in layer.items()}
    try:
        LoraConfig(**lora, task_type="CAUSAL_LM")
    except (TypeError, ValueError) as exc:
        raise UserError(f"{' + '.join(w for w, _ in lora_layers)} is not a valid peft.LoraConfig: "
                        f"{str(exc).splitlines()[0]}") from None


def staging_folder(output_dir: Path) -> Path:
    return Path(output_dir).with_name(Path(output_dir).name + ".partial")


def clear_leftovers(staging: Path, main_process: bool) -> None:
    if main_process and staging.exists():
        shutil.rmtree(staging)  # leftovers of an interrupted run: that unit starts over


def checkpoint_folder(output_dir: Path) -> Path:
    """Where a training run's checkpoints (``save_strategy`` / ``save_steps``, TRL's own) wait for the attempt
    after a kill: beside the staging folder, which is cleared when an attempt starts or fails."""
    return Path(output_dir).with_name(Path(output_dir).name + ".checkpoints")


CHECKPOINT_IDENTITY = "identity.json"


def keep_matching_checkpoints(folder: Path, identity: str | None, main_process: bool) -> None:
    """Keep ``folder``'s checkpoints only if an attempt of this very training left them (``identity``: what its
    result depends on, the unit key in a run); anything else there goes. No identity: nothing is resumed."""
    if not main_process:
        return
    marker = folder / CHECKPOINT_IDENTITY
    try:
        recorded = json.loads(marker.read_text()).get("identity")
    except (OSError, ValueError, AttributeError):  # none, or half written: nothing there is known to be ours
        recorded = None
    if folder.exists() and (identity is None or recorded != identity):
        shutil.rmtree(folder)
    if identity is not None:
        folder.mkdir(parents=True, exist_ok=True)
        io.write_json(marker, {"identity": identity})


def last_checkpoint(folder: str | Path) -> str | None:
    """The newest complete ``checkpoint-N`` in ``folder``: the Trainer writes ``trainer_state.json`` last, so one
    killed while it was being written has none (or half of one) and is passed over."""
    folder = Path(folder)
    steps = sorted(((int(match.group(1)), path) for path in (folder.iterdir() if folder.is_dir() else ())
                    if path.is_dir() and (match := re.fullmatch(r"checkpoint-(\d+)", path.name))), reverse=True)
    for _, path in steps:
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        return str(path)
    return None


def no_checkpoint_at_the_end():
    """The Trainer saves a checkpoint at the last step whatever ``save_steps`` says; the unit saves its model
    then anyway, so that one would only cost a write of the optimizer state per unit."""
    from transformers import TrainerCallback

    class NoFinalCheckpoint(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:
                control.should_save = False

    return NoFinalCheckpoint()


def trainer_arguments(config_class, settings: dict, checkpoints: Path, seed: int, tracking: Tracking, model_config,
                      progress: bool):
    """The trainer's config: ``settings`` and what the run sets itself. Made before the model is loaded, as in
    trl's scripts: it sets up the processes of a launch (the Trainer then trains data-parallel over all of them:
    DDP, DeepSpeed or FSDP, as the accelerate config says; only the main process writes files), and under ZeRO-3
    the model must be loaded after it to be sharded as it loads. ``tracking``: where it reports, under which name
    (:mod:`paretohqd.tracking`)."""
    args = config_class(**for_installed(config_class, settings), output_dir=str(checkpoints), seed=seed,
                        data_seed=seed, report_to=tracking.integrations or "none",
                        use_cpu=resolve_device(model_config.device) == "cpu", disable_tqdm=not progress,
                        **trainer_fields(tracking, config_class))
    if args.n_gpu > 1:
        # One process trains on one device. Outside a launch transformers counts every visible GPU (n_gpu) and
        # wraps the model in nn.DataParallel, multiplying the global batch behind the plan's back (8 GPUs: 64 where
        # the paper's 8 was asked for); data parallelism is a launch's (--accelerate_config), where n_gpu is 1.
        args._n_gpu = 1
    return args


def start_run(config_class, settings: dict, output_dir: Path, seed: int, tracking: Tracking, model_config,
              lora: dict | None, init_from: Path | None, progress: bool, checkpoint_identity: str | None = None):
    """How every training run starts: (staging folder, trainer arguments, model, tokenizer, policy, peft config).
    The arguments come first (see :func:`trainer_arguments`), an interrupted run's leftovers go (its checkpoints
    stay when ``checkpoint_identity`` is theirs: :func:`train_and_record` resumes from the last), the seed is set,
    then the model is loaded (:func:`load_trainable`)."""
    from transformers import set_seed

    staging = staging_folder(output_dir)
    checkpoints = checkpoint_folder(output_dir)
    args = trainer_arguments(config_class, settings, checkpoints, seed, tracking, model_config, progress)
    clear_leftovers(staging, args.process_index == 0)
    with args.main_process_first():
        keep_matching_checkpoints(checkpoints, checkpoint_identity, args.process_index == 0)
    set_seed(seed)
    if args.world_size == 1 and str(args.device) != "cpu":
        # One process, one accelerator: the weights go straight to where the Trainer trains (a launch places
        # them its own way: ZeRO-3 shards them as they load).
        model_config = on_device(model_config, str(args.device))
    return (staging, args, *load_trainable(model_config, lora, init_from))


def load_trainable(model_config, lora: dict | None, init_from: Path | None = None):
    """(model, tokenizer, policy, peft_config) a trainer starts from: the base with a new LoRA adapter (``lora``,
    given to the trainer as ``peft_config``), a previous stage's adapter continued (``init_from`` and ``lora``),
    or full weights (``lora`` None; from ``init_from`` when given)."""
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
    return model, tokenizer, policy, peft_config


class BatchCounter:
    """Counts the micro-batches and sequences this process's model is given during training (a forward pre-hook:
    one call per micro-batch, whatever wraps the model for DDP, DeepSpeed or FSDP). Forwards without gradients
    (DPO's reference log-probs, taken from the same model with its adapter off) are not training batches."""

    def __init__(self, model):
        import torch

        self.batches = 0
        self.sequences = 0
        self.training = torch.is_grad_enabled
        self.handle = model.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs) -> None:
        if not self.training():
            return
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        self.batches += 1
        self.sequences += int(input_ids.shape[0]) if input_ids is not None else 0

    def remove(self) -> None:
        self.handle.remove()


class DivergedError(UserError):
    """Training made the loss or the weights non-finite: the model is not saved, nothing is marked complete."""


def finite_guard(label: str):
    """A trainer callback that stops training, with one sentence naming ``label`` (the model: its method and
    preference) and the step, as soon as a logged loss or a trainable weight is no longer finite: a diverged model
    must never be saved, marked complete and evaluated. The weights are checked after every optimiser step (one
    reduction per parameter, summed in float64)."""
    import torch
    from transformers import TrainerCallback

    def stop(state, what: str, args) -> None:
        raise DivergedError(f"{label}: training diverged at step {state.global_step} of {state.max_steps}: {what} "
                            f"(learning rate {args.learning_rate:g}; lower it, or set max_grad_norm)")

    class FiniteGuard(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            trainable = [p for p in model.parameters() if p.requires_grad] if model is not None else []
            if trainable:
                total = torch.stack([p.detach().sum(dtype=torch.float64) for p in trainable]).sum()
                if not bool(torch.isfinite(total)):
                    stop(state, "the weights are no longer finite (NaN or inf)", args)

        def on_log(self, args, state, control, logs=None, **kwargs):
            for key in ("loss", "train_loss"):
                value = (logs or {}).get(key)
                if isinstance(value, (int, float)) and not math.isfinite(value):
                    stop(state, f"the {key.replace('_', ' ')} is {value}", args)

    return FiniteGuard()


def model_label(card: ModelCard | None, output_dir: Path) -> str:
    """How a sentence about one training run names its model: the card's title (method and preference)."""
    return card.title if card is not None else f"the model for {output_dir}"


def train_and_record(trainer, plan, seed: int, lora: dict | None, init_from: Path | None,
                     facts: dict | None = None, label: str = "training") -> dict:
    """Train; what ``training.json`` records: the plan, the loss, the time, ``facts``, and what each process of a
    launch trained on. ``label`` names the model in the sentence that stops a diverging run."""
    from accelerate.utils import gather_object

    args = trainer.args
    seen = BatchCounter(trainer.model)
    trainer.add_callback(finite_guard(label))
    trainer.add_callback(no_checkpoint_at_the_end())
    resume = last_checkpoint(args.output_dir)
    started = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=resume)
    finally:
        seen.remove()
    seconds = time.perf_counter() - started
    if not math.isfinite(float(result.training_loss)):
        raise DivergedError(f"{label}: training diverged: the mean training loss is {result.training_loss} "
                            f"(learning rate {args.learning_rate:g}; lower it, or set max_grad_norm)")
    # What each process trained on, in rank order: the evidence that every process of a launch took part.
    ranks = gather_object([{"rank": args.process_index, "steps": trainer.state.global_step,
                            "micro_batches": seen.batches, "sequences": seen.sequences}])
    return {"num_samples": plan.num_samples, "global_batch_size": plan.global_batch_size, "steps": plan.steps,
            "epochs": plan.epochs, "learning_rate": args.learning_rate, "train_loss": float(result.training_loss),
            "seconds": seconds, "seed": seed, "lora": lora is not None,
            "init_from": str(init_from) if init_from else None, "world_size": args.world_size,
            "resumed_from": Path(resume).name if resume else None, **(facts or {}),
            "ranks": ranks, "log_history": trainer.state.log_history}


def save_trained_model(trainer, policy, staging: Path, output_dir: Path, stats: dict, card: ModelCard | None,
                       base_model: str, lora: bool) -> None:
    """Write the trained model, tokenizer, generation config (end-of-turn eos), ``training.json`` and card into
    ``staging``, then rename it onto ``output_dir``; every process of a launch calls it."""
    from transformers.integrations import unset_hf_deepspeed_config

    tokenizer = policy.tokenizer
    generation_config = trainer.model.generation_config
    generation_config.eos_token_id = policy.end_of_turn_ids
    generation_config.pad_token_id = tokenizer.pad_token_id
    # Every process takes part in saving (ZeRO-3 and FSDP gather the sharded weights); only the main one writes.
    trainer.save_model(str(staging))
    if trainer.args.process_index == 0:
        (staging / TRAINING_ARGS_FILE).unlink(missing_ok=True)  # the Trainer's pickle: training.json says it all
        tokenizer.save_pretrained(str(staging))
        generation_config.save_pretrained(str(staging))
        shutil.rmtree(staging / "trainer", ignore_errors=True)  # DPO's precomputed reference log-probs
        io.write_json(staging / "training.json", stats)
        if card is not None:
            io.write_text(staging / "README.md", card.render(base_model, lora, stats))
        io.write_text(staging / COMPLETE_MARKER, "ok\n")
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(staging, output_dir)
        shutil.rmtree(trainer.args.output_dir, ignore_errors=True)  # the checkpoints: the model is in place
    trainer.accelerator.wait_for_everyone()  # no process reads the model before it is in place
    # Under ZeRO-3 the launch's DeepSpeed config outlives the Trainer and would make every later from_pretrained
    # (generation, reward models) load sharded weights, which each process's own batches cannot run on.
    unset_hf_deepspeed_config()


# The train.sft fields a DPO or RLOO run does not take from it: the ones its trl config lacks, and loss_type, which
# names another loss there. Listed rather than computed so that planning a run does not import torch; tests hold
# the lists to trl's configs.
SFT_ONLY_FIELDS = {
    "dpo": ("assistant_only_loss", "chat_template_path", "completion_only_loss", "dataset_kwargs",
            "dataset_text_field", "eos_token", "eval_packing", "loss_type", "packing", "packing_strategy",
            "shuffle_dataset"),
    "rloo": ("activation_offloading", "assistant_only_loss", "chat_template_path", "completion_only_loss",
             "dataset_kwargs", "dataset_num_proc", "dataset_text_field", "eos_token", "eval_packing", "loss_type",
             "max_length", "packing", "packing_strategy", "pad_token", "padding_free", "truncation_mode"),
}


def shared_sft_fields(sft: dict, trainer: str) -> dict:
    """The train.sft fields a ``trainer`` ('dpo', 'rloo') run shares with SFT ones (batch size, precision,
    optimiser, schedule, ...), under its own layers."""
    return {key: value for key, value in sft.items() if key not in SFT_ONLY_FIELDS[trainer]}

