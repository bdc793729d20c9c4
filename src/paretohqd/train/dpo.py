"""One DPO run: a base policy (or a previous stage's model) trained on preference pairs with trl.DPOTrainer, with
optional per-response margins (what MODPO needs).

Pairs are tokenized by the policy exactly as SFT samples are (its chat template, its prompt truncation, and the
end-of-turn token kept when a long response is cut), so a DPO model learns to stop like an SFT one; TRL's own
tokenization is skipped. Every ``trl.DPOConfig`` and ``peft.LoraConfig`` field passes through; the run sets only
its output folder, seeds, reporting and device, and writes the model as every training run does
(``train.common``).

Margins. A pairs table may carry ``chosen_margin`` and ``rejected_margin``: an offset m(y) taken off each
response's implicit reward, so that the sigmoid loss is

    -log sigmoid( [beta (log pi(y_w) - log pi_ref(y_w)) - m(y_w)] - [beta (log pi(y_l) - log pi_ref(y_l)) - m(y_l)] )

(the hinge loss takes the same difference). trl 1.16's DPOTrainer has no margin input. The hook is its
``compute_ref_log_probs``: here every reference log-prob the loss reads comes from it (a batch's, computed in
``compute_loss`` just before trl's loss; or the whole dataset's, once, when ``precompute_ref_log_probs`` is set,
which is how trl itself calls it), and it returns log pi_ref(y) + m(y)/beta. trl's loss then computes
beta (log pi(y) - log pi_ref(y) - m(y)/beta) = beta (log pi(y) - log pi_ref(y)) - m(y): the expression above,
exactly (its logged ``rewards/*`` are these margin-adjusted rewards). It holds for the ``sigmoid`` and ``hinge``
loss types with the plain log-ratios; the other losses transform or length-normalise the log-ratios, or use one
side alone, so a margin run refuses them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..tracking import NO_TRACKING, Tracking, tracked
from .cards import ModelCard
from .common import (
    Layers,
    check_lora_settings,
    check_trainer_settings,
    model_label,
    save_trained_model,
    start_run,
    train_and_record,
)
from .sft import OWNED_SFT_FIELDS, RUN_OWNED_SOURCE, plan_training

MARGIN_COLUMNS = ("chosen_margin", "rejected_margin")
OWNED_DPO_FIELDS = dict.fromkeys(OWNED_SFT_FIELDS, RUN_OWNED_SOURCE)
# The loss types trl 1.16's DPOTrainer knows (it would only say so at the first training step).
LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")
MARGIN_LOSS_TYPES = ("sigmoid", "hinge")


def check_dpo_settings(dpo_layers: Layers, lora_layers: Layers | None, use_cpu: bool = True,
                       margins: bool = False) -> dict:
    """``dpo_layers`` checked against trl.DPOConfig and ``lora_layers`` against peft.LoraConfig, before any work;
    ``margins``: the run trains with margins, which enter the loss exactly only as the module says."""
    from trl import DPOConfig

    dpo = check_trainer_settings(DPOConfig, dpo_layers, OWNED_DPO_FIELDS, use_cpu)
    where = functools.partial(_where, dpo_layers)
    loss_types = dpo.get("loss_type", ["sigmoid"])
    loss_types = [loss_types] if isinstance(loss_types, str) else list(loss_types)
    unknown = [t for t in loss_types if t not in LOSS_TYPES]
    if unknown:
        raise UserError(f"{where('loss_type')} '{unknown[0]}' is not a trl DPO loss type (loss types: "
                        f"{', '.join(LOSS_TYPES)})")
    if lora_layers is not None and dpo.get("sync_ref_model"):
        raise UserError(f"{where('sync_ref_model')} needs full fine-tuning (train.use_lora false): with LoRA the "
                        "reference is the base model with the adapter turned off")
    if margins:
        if any(t not in MARGIN_LOSS_TYPES for t in loss_types):
            raise UserError(f"{where('loss_type')} must be sigmoid or hinge for a margin (MODPO) run, not "
                            f"{', '.join(loss_types)}: the other losses do not take the margin exactly")
        exact = {"f_divergence_type": "reverse_kl", "ld_alpha": None, "use_weighting": False,
                 "sync_ref_model": False}
        for key, value in exact.items():
            if key in dpo and dpo[key] != value:
                raise UserError(f"{where(key)} must be {value} for a margin (MODPO) run, not {dpo[key]!r}: the "
                                "margin enters the loss exactly only through plain log-ratios to a fixed reference")
    check_lora_settings(lora_layers)
    return dpo


def _where(layers: Layers, key: str) -> str:
    """The config key that set ``key`` (the last layer that has it)."""
    owners = [where for where, layer in layers if key in layer]
    return f"{owners[-1] if owners else layers[-1][0]}.{key}"


def encode_pair(policy, prompt: str, chosen: str, rejected: str, max_length: int | None) -> dict[str, list[int]]:
    """``prompt_ids``, ``chosen_ids``, ``rejected_ids`` of one pair, each response tokenized as an SFT sample is;
    the prompt ends where either tokenized response first leaves it (trl's rule)."""
    won = policy.encode_for_training(prompt, chosen, max_length)
    lost = policy.encode_for_training(prompt, rejected, max_length)
    start = min(len(won["completion_mask"]) - sum(won["completion_mask"]),
                len(lost["completion_mask"]) - sum(lost["completion_mask"]))
    return {"prompt_ids": won["input_ids"][:start], "chosen_ids": won["input_ids"][start:],
            "rejected_ids": lost["input_ids"][start:]}


def pair_dataset(policy, pairs: pd.DataFrame, max_length: int | None):
    """The tokenized pairs (and their margins) as the trainer's dataset; pairs whose prompt alone fills
    ``max_length`` are left out, as trl does (nothing of their responses would be trained)."""
    import datasets

    encoded = [encode_pair(policy, p, c, r, max_length)
               for p, c, r in zip(pairs["prompt"], pairs["chosen"], pairs["rejected"])]
    columns = {key: [row[key] for row in encoded] for key in ("prompt_ids", "chosen_ids", "rejected_ids")}
    for column in MARGIN_COLUMNS:
        if column in pairs.columns:
            columns[column] = pairs[column].to_numpy(dtype=np.float64).tolist()
    keep = np.ones(len(pairs), dtype=bool) if max_length is None else \
        np.fromiter(map(len, columns["prompt_ids"]), dtype=np.int64, count=len(pairs)) < max_length
    if not keep.any():
        raise UserError(f"every pair's prompt fills max_length {max_length} tokens, so no response would be "
                        "trained; raise the DPO max_length or lower model.max_prompt_length")
    dataset = datasets.Dataset.from_dict(columns)
    return dataset if keep.all() else dataset.select(np.flatnonzero(keep))


@functools.cache
def _margin_trainer():
    """(the DPOTrainer subclass with the margin hook, its collator), built on first use (trl imports torch)."""
    from dataclasses import dataclass

    import torch
    from trl import DPOTrainer
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    @dataclass
    class MarginCollator(DataCollatorForPreference):
        """trl's preference collator, passing the margins along."""

        def torch_call(self, examples):
            batch = super().torch_call(examples)
            for column in MARGIN_COLUMNS:
                if column in examples[0]:
                    batch[column] = torch.tensor([example[column] for example in examples], dtype=torch.float32)
            return batch

    class MarginDPOTrainer(DPOTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # trl's loss reads a batch's reference log-probs from the batch when this is set; compute_loss puts
            # them there (through compute_ref_log_probs, the one place margins enter) unless they were precomputed.
            self.precompute_ref_logps = True

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset  # tokenized by the policy already

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            self._signature_columns = [*dict.fromkeys([*self._signature_columns, *MARGIN_COLUMNS])]

        def compute_ref_log_probs(self, model, inputs):
            chosen, rejected = super().compute_ref_log_probs(
                model, {key: value for key, value in inputs.items() if key not in MARGIN_COLUMNS})
            if MARGIN_COLUMNS[0] in inputs:
                chosen = chosen + inputs[MARGIN_COLUMNS[0]].to(chosen) / self.beta
            if MARGIN_COLUMNS[1] in inputs:
                rejected = rejected + inputs[MARGIN_COLUMNS[1]].to(rejected) / self.beta
            return chosen, rejected

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if "ref_chosen_logps" not in inputs:
                # The reference trl's own loss would run: the base with the adapter off (LoRA), else ref_model.
                reference = self.ref_model if self.ref_model is not None else self.model
                inputs = dict(inputs)
                inputs["ref_chosen_logps"], inputs["ref_rejected_logps"] = self.compute_ref_log_probs(reference,
                                                                                                      inputs)
            inputs = {key: value for key, value in inputs.items() if key not in MARGIN_COLUMNS}
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    return MarginDPOTrainer, MarginCollator


def dpo_trainer(model, tokenizer, args, dataset, peft_config=None):
    """trl.DPOTrainer with the margin hook over a :func:`pair_dataset`."""
    trainer_class, collator_class = _margin_trainer()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    collator = collator_class(pad_token_id=tokenizer.pad_token_id, max_length=args.max_length,
                              truncation_mode=args.truncation_mode, pad_to_multiple_of=args.pad_to_multiple_of)
    return trainer_class(model=model, args=args, data_collator=collator, train_dataset=dataset,
                         processing_class=tokenizer, peft_config=peft_config)


def _on_disk(dataset, folder: Path, args):
    """The dataset saved once and memory-mapped by every process: trl caches precomputed reference log-probs
    beside a dataset's files, at a path every process of a launch must agree on (an in-memory dataset gets a random
    one per process, and the launch hangs)."""
    import datasets

    with args.main_process_first(local=False, desc="pairs to disk"):
        if args.process_index == 0:
            dataset.save_to_disk(str(folder))
    return datasets.load_from_disk(str(folder))


def train_dpo(pairs: pd.DataFrame, output_dir: Path, model_config, dpo: dict, lora: dict | None, seed: int,
              init_from: Path | None = None, tracking: Tracking = NO_TRACKING, card: ModelCard | None = None,
              log: Callable[[str], None] = print, progress: bool = True,
              checkpoint_identity: str | None = None) -> dict:
    """Train on ``pairs`` (prompt, chosen, rejected; optional ``chosen_margin``, ``rejected_margin``) and save to
    ``output_dir`` (adapter or full weights, tokenizer, generation config, card). ``lora`` None is full
    fine-tuning; ``init_from`` continues a previous stage's model, which is then also the reference."""
    from trl import DPOConfig

    output_dir = Path(output_dir)
    staging, args, model, tokenizer, policy, peft_config = start_run(
        DPOConfig, dpo, output_dir, seed, tracking, model_config, lora, init_from, progress, checkpoint_identity)
    dataset = pair_dataset(policy, pairs, args.max_length)
    if args.precompute_ref_log_probs:
        dataset = _on_disk(dataset, staging / "trainer" / "pairs", args)
    plan = plan_training(len(dataset), dpo, args.world_size)
    log(plan.announce(output_dir, args.world_size, "pairs"))
    margins = any(column in pairs.columns for column in MARGIN_COLUMNS)
    with tracked(tracking):
        trainer = dpo_trainer(model, tokenizer, args, dataset, peft_config)
        stats = train_and_record(trainer, plan, seed, lora, init_from,
                                 {"trainer": "dpo", "beta": args.beta, "loss_type": list(args.loss_type),
                                  "margins": margins, "pairs_dropped": len(pairs) - len(dataset)},
                                 label=model_label(card, output_dir))
    save_trained_model(trainer, policy, staging, output_dir, stats, card, model_config.name_or_path, lora is not None)
    return stats
