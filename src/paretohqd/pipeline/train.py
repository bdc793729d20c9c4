"""Training units: a method's action builds the samples and the model card of one model, then calls :func:`fit`;
what the unit's key holds is declared once here, by :func:`training_unit`."""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Sequence

from ..config import ModelConfig, RunConfig, from_dict
from ..policy import model_identity, resolve_device
from ..train import ModelCard, check_training_settings, split_settings, train_model
from .distributed import launched_world
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
    """A unit that trains one model into ``output``: ``train.sft`` and ``train.lora`` with method-specific
    ``(config key, mapping)`` layers on top; ``upstream`` role ``init`` is the model it continues from."""
    sft_sources = [("train.sft", config.train.sft), *sft_layers]
    lora_sources = [("train.lora", config.train.lora), *lora_layers] if config.train.use_lora else None
    sft = {key: value for _, layer in sft_sources for key, value in layer.items()}
    lora = {key: value for _, layer in lora_sources for key, value in layer.items()} if lora_sources else None
    result, cosmetic = split_settings(sft)
    model, placement = model_settings(config.model)
    use_cpu = resolve_device(config.model.device) == "cpu"
    processes = launched_world()[1]
    if processes > 1:  # data-parallel training multiplies the global batch: another result (1: keys as before)
        settings = {**(settings or {}), "processes": processes}
    return Unit(
        name=name, kind="sft", stage=stage, command="train", action=action, outputs=(output,), upstream=upstream,
        settings={"sft": result, "lora": lora, "model": model, "seed": seed, **(settings or {})},
        options={"sft_cosmetic": cosmetic, "report_to": config.report_to, "progress": progress, **placement,
                 **(options or {})},
        check=lambda: check_training_settings(sft_sources, lora_sources, use_cpu))


def fit(ctx: UnitContext, samples, card: ModelCard) -> dict:
    """Train the unit's model on ``samples`` (columns prompt, response) into its output folder."""
    init = ctx.inputs.get("init")
    return train_model(samples, ctx.output, rebuild_model_config(ctx.settings["model"], ctx.options),
                       {**ctx.settings["sft"], **ctx.options["sft_cosmetic"]}, ctx.settings["lora"],
                       ctx.settings["seed"],
                       init_from=init[0] if init else None, report_to=ctx.options["report_to"], card=card,
                       log=ctx.log, progress=ctx.options["progress"])
