"""A stand-in for vLLM 0.33.0 in tests (no GPU, no CUDA kernels): the interface paretohqd uses, as the real wheel
defines it, with deterministic completions derived from (prompt ids, seed, LoRA name).

Checked against the vllm-0.33.0 wheel: ``vllm.LLM`` (entrypoints/llm.py: ``__init__(model, *, tokenizer, dtype,
revision, seed, ..., **kwargs)`` with LoRA settings in ``EngineArgs`` (engine/arg_utils.py), ``generate(prompts,
sampling_params=None, *, use_tqdm=True, lora_request=None, priority=None, tokenization_kwargs=None,
mm_processor_kwargs=None)``; per-prompt sequences must match the prompt count (entrypoints/common/offline.py);
``llm.llm_engine.engine_core.shutdown()`` (v1/engine); the rank check of lora/peft_helper.py and the
``MaxLoRARanks`` of config/lora.py; "LoRA is not enabled" of v1/engine/input_processor.py.

Every engine construction and ``generate`` call is recorded in ``RECORD`` for the tests to inspect.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from pathlib import Path

from .inputs import TokensPrompt
from .lora.request import LoRARequest
from .outputs import CompletionOutput, RequestOutput
from .sampling_params import SamplingParams

__version__ = "0.33.0"
MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
RECORD: dict[str, list] = {"engines": [], "generate": []}
"""``engines``: every LLM built; ``generate``: per call {"engine", "prompt_token_ids", "params", "loras",
"outputs"}."""

__all__ = ["LLM", "RECORD", "CompletionOutput", "LoRARequest", "RequestOutput", "SamplingParams", "TokensPrompt"]


class _EngineCore:
    def __init__(self) -> None:
        self.shut_down = False

    def shutdown(self, timeout: float | None = None) -> None:
        self.shut_down = True


class _LLMEngine:
    def __init__(self) -> None:
        self.engine_core = _EngineCore()


class LLM:
    def __init__(self, model: str, *, tokenizer: str | None = None, dtype: str = "auto", revision: str | None = None,
                 seed: int = 0, enable_lora: bool = False, max_loras: int = 1, max_lora_rank: int = 16,
                 **kwargs) -> None:
        if max_lora_rank not in MAX_LORA_RANKS:  # pydantic's Literal check in the real LoRAConfig
            raise ValueError(f"max_lora_rank must be one of {MAX_LORA_RANKS}, not {max_lora_rank}")
        if max_loras < 1:
            raise ValueError(f"max_loras must be at least 1, not {max_loras}")
        self.model = model
        self.args = {"model": model, "tokenizer": tokenizer, "dtype": dtype, "revision": revision, "seed": seed,
                     "enable_lora": enable_lora, "max_loras": max_loras, "max_lora_rank": max_lora_rank, **kwargs}
        self.vocab_size = json.loads((Path(model) / "config.json").read_text())["vocab_size"]
        self.llm_engine = _LLMEngine()
        self._tokenizer = None
        RECORD["engines"].append(self)

    @property
    def shut_down(self) -> bool:
        return self.llm_engine.engine_core.shut_down

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True, lora_request=None, priority=None,
                 tokenization_kwargs=None, mm_processor_kwargs=None) -> list[RequestOutput]:
        if self.shut_down:
            raise RuntimeError("generate on an engine that was shut down")
        prompts = [prompts] if isinstance(prompts, (str, dict)) else list(prompts)
        params = _per_prompt(sampling_params if sampling_params is not None else SamplingParams(), len(prompts),
                             "params", SamplingParams)
        loras = _per_prompt(lora_request, len(prompts), "lora_request", LoRARequest)
        ids = [_token_ids(prompt) for prompt in prompts]
        outputs = []
        for index, (prompt_ids, param, lora) in enumerate(zip(ids, params, loras)):
            if lora is not None:
                self._check_lora(lora)
            tokens = fake_completion(prompt_ids, param, lora.lora_name if lora else None, self.vocab_size)
            text = self._decode(tokens, param) if param.detokenize else ""
            finish = "stop" if tokens and tokens[-1] in (param.stop_token_ids or ()) else "length"
            outputs.append(RequestOutput(str(index), None, prompt_ids, None,
                                         [CompletionOutput(0, text, tokens, None, None, finish_reason=finish,
                                                           lora_request=lora)], True, lora_request=lora))
        RECORD["generate"].append({"engine": self, "prompt_token_ids": ids, "params": params, "loras": loras,
                                   "outputs": outputs})
        return outputs

    def _check_lora(self, lora: LoRARequest) -> None:
        if not self.args["enable_lora"]:
            raise ValueError(f"Got lora_request {lora} but LoRA is not enabled!")
        config = json.loads((Path(lora.lora_path) / "adapter_config.json").read_text())
        rank = max([config["r"], *(config.get("rank_pattern") or {}).values()])
        if rank > self.args["max_lora_rank"]:
            raise ValueError(f"LoRA rank {rank} is greater than max_lora_rank {self.args['max_lora_rank']}.")

    def _decode(self, tokens: list[int], params: SamplingParams) -> str:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.args["tokenizer"] or self.model)
        return self._tokenizer.decode(tokens, skip_special_tokens=params.skip_special_tokens)


def fake_completion(prompt_ids: list[int], params: SamplingParams, lora_name: str | None, vocab_size: int) -> list[int]:
    """Deterministic new token ids: a function of the prompt, the seed (not for greedy decoding, which has none)
    and the adapter; cut after the first stop token, which vLLM keeps in ``token_ids``."""
    seed = params.seed if params.temperature >= 1e-5 else "greedy"
    state = hashlib.sha256(json.dumps([list(prompt_ids), seed, lora_name]).encode()).hexdigest()
    rng = random.Random(state)
    tokens = [rng.randrange(vocab_size) for _ in range(rng.randint(1, params.max_tokens or 16))]
    for position, token in enumerate(tokens):
        if token in (params.stop_token_ids or ()):
            return tokens[:position + 1]
    return tokens


def _per_prompt(value, count: int, what: str, kind: type) -> list:
    if isinstance(value, Sequence) and not isinstance(value, (str, kind)):
        if len(value) != count:
            raise ValueError(f"The lengths of prompts ({count}) and {what} ({len(value)}) must be the same.")
        return list(value)
    return [value] * count


def _token_ids(prompt) -> list[int]:
    if isinstance(prompt, dict) and "prompt_token_ids" in prompt:
        return list(prompt["prompt_token_ids"])
    if isinstance(prompt, list) and all(isinstance(t, int) for t in prompt):
        return prompt
    raise NotImplementedError("the fake vLLM takes token-id prompts only (paretohqd tokenizes them itself)")
