"""``vllm.inputs.TokensPrompt`` of vLLM 0.33.0 (vllm/inputs/llm.py): a TypedDict of prompt token ids."""

from __future__ import annotations

from typing import NotRequired, TypedDict


class TokensPrompt(TypedDict):
    prompt_token_ids: list[int]
    prompt: NotRequired[str]
