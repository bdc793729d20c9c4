"""Training units: a method's action builds the samples (or preference pairs) and the model card of one model, then
calls :func:`fit` (SFT) or :func:`fit_pairs` (DPO); what the unit's key holds is declared once here, by
:func:`training_unit` and :func:`dpo_training_unit`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from ..config import ModelConfig, RunConfig, from_dict
from ..policy import check_model, model_identity, resolve_device
from ..policy.load import needs_activation_checkpointing
from ..tracking import check_report_to
from ..train import ModelCard, check_training_settings, split_settings, train_model
from ..train.common import shared_sft_fields
from ..train.dpo import check_dpo_settings, train_dpo
from .distributed import launched_world
from .rundir import unit_tracking
from .units import Unit, UnitContext

MODEL_OPTIONS = ("device", "device_map")


def model_settings(model: ModelConfig) -> tuple[dict, dict]:
    """(what a policy's outputs depend on: its config without placement, plus its content identity; placement)."""
    values = dataclasses.asdict(model)
    options = {key: values.pop(key) for key in MODEL_OPTIONS}
    return {**values, "identity": model_identity(model.name_or_path, model.revision, model.dtype)}, options


def rebuild_model_config(settings: Mapping, options: Mapping) -> ModelConfig:
    values = {key: value for key, value in settings.items() if key != "identity"}
    return from_dict(ModelConfig, {**values, **{key: options[key] for key in MODEL_OPTIONS}})


def training_unit(name: str, stage: str, output: str, action: Callable[[UnitContext], None], config: RunConfig,
                  upstream: Mapping[str, Unit], seed: int, sft_layers: Sequence[tuple[str, Mapping]] = (),
                  lora_layers: Sequence[tuple[str, Mapping]] = (), settings: Mapping | None = None,
                  options: Mapping | None = None, progress: bool = True) -> Unit:
    """A unit that trains one model into ``output`` with trl.SFTTrainer: ``train.sft`` and ``train.lora`` with
    method-specific ``(config key, mapping)`` layers on top; ``upstream`` role ``init`` is the model it continues
    from."""
    sources = [("train.sft", config.train.sft), *sft_layers]
    lora_sources = _lora_sources(config, lora_layers)
    use_cpu = resolve_device(config.model.device) == "cpu"
    return _trainer_unit("sft", sources, lora_sources, lambda: check_training_settings(sources, lora_sources, use_cpu),
                         name, stage, output, action, config, upstream, seed, settings, options, progress)


def dpo_training_unit(name: str, stage: str, output: str, action: Callable[[UnitContext], None], config: RunConfig,
                      upstream: Mapping[str, Unit], seed: int, dpo_layers: Sequence[tuple[str, Mapping]] = (),
                      lora_layers: Sequence[tuple[str, Mapping]] = (), settings: Mapping | None = None,
                      options: Mapping | None = None, progress: bool = True, margins: bool = False) -> Unit:
    """A unit that trains one model into ``output`` with trl.DPOTrainer: the ``train.sft`` fields DPOConfig shares
    (batch size, precision, max_length, ...) and ``train.lora``, with method-specific layers on top; ``margins``:
    its pairs carry margins (MODPO), which need the losses that take them exactly."""
    sources = [("train.sft", shared_sft_fields(config.train.sft, "dpo")), *dpo_layers]
    lora_sources = _lora_sources(config, lora_layers)
    use_cpu = resolve_device(config.model.device) == "cpu"
    return _trainer_unit("dpo", sources, lora_sources,
                         lambda: check_dpo_settings(sources, lora_sources, use_cpu, margins),
                         name, stage, output, action, config, upstream, seed, settings, options, progress)


def _lora_sources(config: RunConfig, lora_layers) -> list | None:
    return [("train.lora", config.train.lora), *lora_layers] if config.train.use_lora else None


def _trainer_unit(kind: str, sources, lora_sources, check, name, stage, output, action, config, upstream, seed,
                  settings, options, progress) -> Unit:
    """The one shape of a training unit: its key holds the trainer settings that can change the weights (under
    the trainer's name), the LoRA settings, the model and the seed, and the method's own ``settings``."""
    merged = {key: value for _, layer in sources for key, value in layer.items()}
    if "activation_checkpointing" in merged and merged["activation_checkpointing"] is None:
        # Decided here from the model's size, so the key holds what training will do (False for a small model:
        # the keys of runs made before the setting had an automatic default).
        merged["activation_checkpointing"] = needs_activation_checkpointing(config.model.name_or_path,
                                                                            config.model.revision)
    lora = {key: value for _, layer in lora_sources for key, value in layer.items()} if lora_sources else None
    result, cosmetic = split_settings(merged)
    model, placement = model_settings(config.model)
    processes = launched_world()[1]
    if processes > 1:  # data-parallel training multiplies the global batch: another result (1: keys as before)
        settings = {**(settings or {}), "processes": processes}
    return Unit(
        name=name, kind=kind, stage=stage, command="train", action=action, outputs=(output,), upstream=upstream,
        settings={kind: result, "lora": lora, "model": model, "seed": seed,
                  **({"truncated_replies": config.train.truncated_replies} if kind == "sft" else {}),
                  **(settings or {})},
        options={f"{kind}_cosmetic": cosmetic, "tracking": unit_tracking(config.report_to, config.output_dir, name),
                 "progress": progress, **placement,
                 **(options or {})},
        check=lambda: (check(), check_report_to(config.report_to),
                       check_model(config.model.name_or_path, config.model.revision, lora, config.model.device)))


def fit(ctx: UnitContext, samples, card: ModelCard) -> dict:
    """Train the unit's model on ``samples`` (columns prompt, response; optional truncated) into its output
    folder."""
    init = ctx.inputs.get("init")
    return train_model(samples, ctx.output, rebuild_model_config(ctx.settings["model"], ctx.options),
                       {**ctx.settings["sft"], **ctx.options["sft_cosmetic"]}, ctx.settings["lora"],
                       ctx.settings["seed"],
                       init_from=init[0] if init else None, tracking=ctx.options["tracking"], card=card,
                       log=ctx.log, progress=ctx.options["progress"],
                       truncated_replies=ctx.settings.get("truncated_replies", "open"), checkpoint_identity=ctx.key)


def fit_pairs(ctx: UnitContext, pairs, card: ModelCard, beta: float | None = None) -> dict:
    """Train the unit's DPO model on ``pairs`` (columns prompt, chosen, rejected; optional margins) into its
    output folder; ``beta``: the one the method derives from its settings (MODPO's beta / w_0)."""
    init = ctx.inputs.get("init")
    dpo = {**ctx.settings["dpo"], **ctx.options["dpo_cosmetic"], **({"beta": beta} if beta is not None else {})}
    return train_dpo(pairs, ctx.output, rebuild_model_config(ctx.settings["model"], ctx.options), dpo,
                     ctx.settings["lora"], ctx.settings["seed"], init_from=init[0] if init else None,
                     tracking=ctx.options["tracking"], card=card, log=ctx.log, progress=ctx.options["progress"],
                     checkpoint_identity=ctx.key)
