"""Any preference in, a model out: load the model a finished run serves for a preference, and let it answer.

    model, tokenizer = paretohqd.load_policy("runs/demo", [0.3, 0.7])              # nearest trained model
    served = paretohqd.load_policy("runs/demo", [0.35, 0.65], mode="interpolate")  # exact LoRA combination
    served.generate(["How do I bake bread?"])                                      # conditioned as it was trained
    served.chat_text("How do I bake bread?")                                       # the text the model continues

For RiC the prompt must carry the preference's target rewards: ``generate`` and ``chat_text`` write them in
(``served.conditioned(prompts)`` alone); a caller using the plain ``(model, tokenizer)`` pair does the same with
``served.conditioned``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from .config import ModelConfig, SamplingConfig, from_dict
from .methods import get_method
from .pipeline.serve import ServedModel, run_config, served_model
from .policy import Policy, generate_responses
from .policy import load_policy as load_model
from .policy.load import check_device


class ServedPolicy(tuple):
    """``(model, tokenizer)``, with what the run serves them as: ``served`` (method, weights, mode, the trained
    model folders and mix), ``policy`` (chat template, prompt truncation, end-of-turn tokens) and the run's
    ``sampling`` (its evaluation's)."""

    def __new__(cls, policy: Policy, served: ServedModel):
        self = super().__new__(cls, (policy.model, policy.tokenizer))
        self.policy, self.served = policy, served
        self.sampling = served.config.evaluate.sampling
        return self

    @property
    def model(self):
        return self[0]

    @property
    def tokenizer(self):
        return self[1]

    def conditioned(self, prompts: Sequence[str]) -> list[str]:
        return self.served.conditioned(list(prompts))

    def chat_text(self, prompt: str) -> str:
        """The text the model continues when it answers ``prompt`` for this preference."""
        return self.policy.chat_text(self.conditioned([prompt])[0])

    def generate(self, prompts: Sequence[str], sampling: SamplingConfig | None = None, seed: int = 0) -> list[str]:
        """One response per prompt (HH-RLHF-style dialogues or plain text), sampled with ``sampling`` (default: the
        run's evaluation sampling); the same seed gives the same text."""
        return generate_responses(self.policy, self.conditioned(prompts), sampling or self.sampling, seed).texts


def load_policy(run_dir: str | Path, weights: Sequence[float], mode: str | None = None, device: str | None = None,
                dtype: str | None = None, overrides: Sequence[str] = ()) -> ServedPolicy:
    """The model a finished run serves for ``weights`` (any preference, any positive scale), on ``device`` (default
    the run's ``model.device``). ``mode``, for methods with one model per preference (ParetoHqD, MORLHF, MODPO):
    ``nearest`` (default: the trained model whose preference is closest) or ``interpolate`` (the exact weighted
    combination of the trained models whose cell holds the preference: peft's "cat" LoRA combination, or the
    weighted average of full fine-tunes). RiC conditions its one model, Rewarded Soups builds the soup, SFT serves
    its one model. ``dtype``: the weights' type in memory (default the run's ``model.dtype``); ``overrides``: of the
    run's evaluation sampling, the default of :meth:`ServedPolicy.generate` (``["--evaluate.sampling.top_p",
    "0.95"]``)."""
    config = run_config(run_dir, list(overrides))
    served = served_model(get_method(config.method), config, weights, mode)
    model_config = config.model if dtype is None \
        else from_dict(ModelConfig, {**dataclasses.asdict(config.model), "dtype": dtype})
    check_device(device or model_config.device, "device" if device else "model.device")
    policy = load_model(model_config, served.model_folders, served.mix, device=device)
    return ServedPolicy(policy, served)
