"""Trained models on top of a base: one LoRA adapter merged into a fresh copy of the base, a folder of full
weights, or the weighted combination of several (Rewarded Soups).

A weighted LoRA combination is exact: peft's ``"cat"`` combination concatenates the adapters, so the merged
weight is W0 + sum_i w_i B_i A_i (peft itself calls ``"linear"`` an approximation). Full fine-tunes are combined as
the weighted average of their weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .load import load_causal_lm


def is_adapter(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").exists()


def load_trained(path: str | Path, model_config):
    """(model, tokenizer) of a saved model folder: a LoRA adapter is merged into a fresh copy of the base."""
    from transformers import AutoTokenizer, GenerationConfig

    path = Path(path)
    if not is_adapter(path):
        return load_causal_lm(str(path), model_config.dtype, device_map=model_config.device_map)
    from peft import PeftModel

    base, _ = load_causal_lm(model_config.name_or_path, model_config.dtype, model_config.revision,
                             model_config.device_map)
    model = PeftModel.from_pretrained(base, str(path)).merge_and_unload()
    model.generation_config = GenerationConfig.from_pretrained(str(path))
    return model, AutoTokenizer.from_pretrained(str(path))


def load_ingredients(paths: Sequence[str | Path], model_config):
    """(the base with every LoRA adapter of ``paths`` loaded, their adapter names), ready for a weighted
    combination."""
    from peft import PeftModel

    base, _ = load_causal_lm(model_config.name_or_path, model_config.dtype, model_config.revision,
                             model_config.device_map)
    model = PeftModel.from_pretrained(base, str(paths[0]), adapter_name="ingredient_0")
    for index, path in enumerate(paths[1:], start=1):
        model.load_adapter(str(path), adapter_name=f"ingredient_{index}")
    return model, [f"ingredient_{i}" for i in range(len(paths))]


def combine(paths: Sequence[str | Path], weights: Sequence[float], model_config):
    """(model, tokenizer) of the ``weights``-weighted combination of the models in ``paths``."""
    from transformers import AutoTokenizer, GenerationConfig

    if len(paths) != len(weights):
        raise ValueError(f"{len(paths)} models but {len(weights)} weights to combine them")
    paths = [Path(p) for p in paths]
    tokenizer = AutoTokenizer.from_pretrained(str(paths[0]))
    if is_adapter(paths[0]):
        model, names = load_ingredients(paths, model_config)
        model.add_weighted_adapter(names, [float(w) for w in weights], adapter_name="combined",
                                   combination_type="cat")
        model.set_adapter("combined")
        merged = model.merge_and_unload(adapter_names=["combined"])
    else:
        merged, _ = load_causal_lm(str(paths[0]), model_config.dtype)
        state = {key: value * float(weights[0]) for key, value in merged.state_dict().items()}
        for path, weight in zip(paths[1:], weights[1:]):
            other, _ = load_causal_lm(str(path), model_config.dtype)
            for key, value in other.state_dict().items():
                state[key] += value * float(weight)
        merged.load_state_dict(state)
    merged.generation_config = GenerationConfig.from_pretrained(str(paths[0]))
    return merged, tokenizer
