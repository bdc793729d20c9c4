"""One object for a policy: the model and tokenizer, its chat template, the one prompt-truncation rule that
training and generation share, and the tokens that end an assistant turn.

Prompts are stored in one format, HH-RLHF's (``"\\n\\nHuman: ...\\n\\nAssistant:"``); the policy turns them into its
own chat template. A model without one (a base model such as Llama-2-7b-hf) keeps that plain format, as RiC and the
paper do: the tokenizer's BOS, the prompt, then the reply after a space and the tokenizer's EOS. A prompt longer
than ``max_prompt_length`` tokens keeps its end (the last turns are what a reply answers). Training sequences are
tokenized here exactly as ``trl.SFTTrainer`` tokenizes conversational prompt-completion data, then cut to
``max_length`` from the response's end *before* its end-of-turn token, so a long sample still teaches the model to
stop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import prompt_to_messages
from .adapters import combine, load_trained
from .formats import plain_bos_text
from .load import load_causal_lm, resolve_device

END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>")


@dataclass
class Policy:
    model: Any
    tokenizer: Any
    system_prompt: str | None = None
    max_prompt_length: int = 384
    device: str = "cpu"
    _turn_tail: list[int] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @property
    def end_of_turn_ids(self) -> list[int]:
        return end_of_turn_ids(self.tokenizer)

    def truncate_prompt(self, prompt: str) -> str:
        """Keep the last ``max_prompt_length`` tokens of an over-long prompt."""
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if len(ids) <= self.max_prompt_length:
            return prompt
        return self.tokenizer.decode(ids[-self.max_prompt_length:])

    @property
    def plain(self) -> bool:
        """Whether the tokenizer has no chat template: prompts are then written in the plain HH-RLHF format."""
        return getattr(self.tokenizer, "chat_template", None) is None

    def messages(self, prompt: str) -> list[dict[str, str]]:
        return prompt_to_messages(self.truncate_prompt(prompt), self.system_prompt)

    def _plain_prompt(self, prompt: str) -> str:
        return (self.system_prompt or "") + self.truncate_prompt(prompt)

    def chat_text(self, prompt: str) -> str:
        """The text the model continues when it answers ``prompt`` (special tokens written out: it is tokenized
        without adding any)."""
        if self.plain:
            return plain_bos_text(self.tokenizer) + self._plain_prompt(prompt)
        return self.tokenizer.apply_chat_template(self.messages(prompt), add_generation_prompt=True, tokenize=False)

    def trainer_prompt(self, prompt: str) -> list[dict[str, str]] | str:
        """``prompt`` as a TRL trainer takes it: conversational messages (TRL applies the chat template), or the plain
        text, to which the tokenizer adds its own special tokens."""
        return self._plain_prompt(prompt) if self.plain else self.messages(prompt)

    def encode_for_training(self, prompt: str, response: str, max_length: int | None,
                            finished: bool = True) -> dict[str, list[int]]:
        """``input_ids`` and ``completion_mask`` (1 on the response and its end-of-turn tokens) of one sample.

        An unfinished response (one cut at a generation's token limit) gets no end-of-turn tokens: a model trained
        on it learns its words, not to stop where the limit happened to fall."""
        if self.plain:
            text = self.chat_text(prompt)
            prompt_ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            full_ids = self.tokenizer(f"{text} {response}", add_special_tokens=False)["input_ids"]
            start = _common_prefix_length(prompt_ids, full_ids)
            content, tail = full_ids[start:], [self.tokenizer.eos_token_id]
        else:
            messages = self.messages(prompt)
            prompt_ids = self._ids(messages, add_generation_prompt=True)
            full_ids = self._ids([*messages, {"role": "assistant", "content": response}])
            start = _common_prefix_length(prompt_ids, full_ids)
            tail = self._tail(messages)
            has_tail = bool(tail) and full_ids[len(full_ids) - len(tail):] == tail \
                and len(full_ids) - len(tail) >= start
            content = full_ids[start: len(full_ids) - len(tail)] if has_tail else full_ids[start:]
            tail = tail if has_tail else []
        ending = tail if finished else []
        if max_length is not None and start + len(content) + len(ending) > max_length:
            content = content[: max(0, max_length - start - len(ending))]
        full_ids = full_ids[:start] + content + ending
        return {"input_ids": full_ids, "completion_mask": [0] * start + [1] * (len(full_ids) - start)}

    def _ids(self, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> list[int]:
        return self.tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                                  add_generation_prompt=add_generation_prompt)["input_ids"]

    def _tail(self, messages: list[dict[str, str]]) -> list[int]:
        """The tokens the chat template puts after an assistant reply (its end-of-turn token and what follows)."""
        if self._turn_tail is None:
            prompt_ids = self._ids(messages, add_generation_prompt=True)
            empty = self._ids([*messages, {"role": "assistant", "content": ""}])
            self._turn_tail = empty[_common_prefix_length(prompt_ids, empty):]
        return self._turn_tail


def end_of_turn_ids(tokenizer) -> list[int]:
    """Token ids that end an assistant turn: eos, and the chat template's end-of-turn token when it differs."""
    ids = [tokenizer.eos_token_id]
    for token in END_OF_TURN_TOKENS:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id and token_id not in ids:
            ids.append(token_id)
    return [i for i in ids if i is not None]


def _common_prefix_length(ids: Sequence[int], other: Sequence[int]) -> int:
    """Where the tokenized prompt and prompt + completion diverge (TRL's rule for the start of the completion)."""
    length = 0
    for a, b in zip(ids, other):
        if a != b:
            break
        length += 1
    return length


def load_policy(model_config, adapters: Sequence[str | Path] = (), mix: Sequence[float] | None = None,
                device: str | None = None) -> Policy:
    """The base model (no ``adapters``), one trained model (an adapter folder, merged into the base, or a folder of
    full weights), or the ``mix``-weighted combination of several, placed on ``device`` (default the config's)."""
    device = resolve_device(device or model_config.device)
    placed = on_device(model_config, device)
    if not adapters:
        model, tokenizer = load_causal_lm(placed.name_or_path, placed.dtype, placed.revision, placed.device_map)
    elif len(adapters) == 1 and mix is None:
        model, tokenizer = load_trained(adapters[0], placed)
    else:
        model, tokenizer = combine(list(adapters), list(mix or []), placed)
    if model_config.device_map is None and device == "cpu":
        model.to(device)
    return Policy(model, tokenizer, model_config.system_prompt, model_config.max_prompt_length, device)


def on_device(model_config, device: str):
    """``model_config`` loading straight onto ``device`` (an accelerator): weights are read into its memory and a
    LoRA adapter is merged there, not in host memory first (a 7B model: 13.5 GB of RAM and 20-60 s a unit). A
    ``device_map`` of the user's, or the CPU, is left as it is."""
    if model_config.device_map is not None or device == "cpu":
        return model_config
    return dataclasses.replace(model_config, device_map={"": device})
