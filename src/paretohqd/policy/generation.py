"""Batched sampling with Hugging Face ``generate`` (the CPU and single-GPU backend).

Prompts go through the policy's chat template and truncation rule; batches are length-sorted and left-padded; each
batch draws from its own seeded generator state, so a resumed run reproduces the same text. Outputs are cut at the
next turn marker: a model that starts writing the user's next turn has finished its reply. A reply that neither
ended its turn nor reached a turn marker before ``max_new_tokens`` is *truncated*: it is recorded as such, so that
training never takes it for a finished reply and evaluation reports how many hit the limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .policy import Policy

_NEXT_TURN = re.compile(r"(?:^|\n)\s*(?:Human|Assistant|User)\s*:|<\|im_start\|>|<\|im_end\|>")
SAMPLING_KEYS = ("do_sample", "temperature", "top_p", "top_k", "max_new_tokens", "batch_size")


@dataclass
class Replies:
    """Generated replies in prompt order, and whether each was cut at the token limit (None: another process's
    share of a multi-process call, see :func:`merge_responses`)."""

    texts: list[str | None]
    truncated: list[bool | None]
    tokens: list[int | None]
    """New tokens each reply took, its end-of-turn token included: the hardware-neutral cost of generating it."""


def clean_response(text: str) -> str:
    """Cut at the next turn marker and strip."""
    return cut_at_turn(text)[0]


def cut_at_turn(text: str) -> tuple[str, bool]:
    """(the text cut at the next turn marker and stripped, whether a marker was found: the reply had ended)."""
    match = _NEXT_TURN.search(text)
    return (text[: match.start()] if match else text).strip(), match is not None


def sampling_record(sampling, seed: int) -> dict:
    """The sampling settings as recorded beside every generation file."""
    return {**{key: getattr(sampling, key) for key in SAMPLING_KEYS}, "seed": seed}


def generate_responses(policy: Policy, prompts: list[str], sampling, seed: int,
                       progress: Callable[[int], None] | None = None,
                       share: tuple[int, int] = (0, 1)) -> Replies:
    """One sampled response per prompt, in the order of ``prompts``, with whether it hit the token limit.

    ``share`` = (rank, world_size): answer only the batches whose number is ``rank`` modulo ``world_size`` (one
    process's share of the very batches, and per-batch seeds, of a single process, so that merged shares are
    bit-identical to one process's text); the other prompts get None (:func:`merge_responses`)."""
    import torch

    tokenizer = policy.tokenizer
    tokenizer.padding_side = "left"  # decoder-only generation continues from the right edge
    texts = [policy.chat_text(p) for p in prompts]
    lengths = np.array([len(t) for t in texts])
    order = np.argsort(-lengths, kind="stable")
    outputs: list[str | None] = [None] * len(prompts)
    truncated: list[bool | None] = [None] * len(prompts)
    tokens: list[int | None] = [None] * len(prompts)
    model = policy.model
    model.eval()
    device = next(model.parameters()).device
    eos = policy.end_of_turn_ids
    rank, world_size = share
    for batch_number, start in enumerate(range(0, len(order), sampling.batch_size)):
        if batch_number % world_size != rank:
            continue
        indices = order[start:start + sampling.batch_size]
        encoded = tokenizer([texts[i] for i in indices], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(device)
        torch.manual_seed(seed * 100_003 + batch_number)
        kwargs = dict(max_new_tokens=sampling.max_new_tokens, do_sample=sampling.do_sample, eos_token_id=eos,
                      pad_token_id=tokenizer.pad_token_id)
        if sampling.do_sample:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k)
        with torch.inference_mode():
            generated = model.generate(**encoded, **kwargs)
        new_tokens = generated[:, encoded["input_ids"].shape[1]:]
        is_end = torch.isin(new_tokens, torch.tensor(eos, device=new_tokens.device))
        ended = is_end.any(dim=1)
        lengths = torch.where(ended, is_end.int().argmax(dim=1) + 1, new_tokens.shape[1]).tolist()
        for i, text, turn_ended, length in zip(indices, tokenizer.batch_decode(new_tokens, skip_special_tokens=True),
                                               ended.tolist(), lengths):
            outputs[i], marker = cut_at_turn(text)
            truncated[i] = not (turn_ended or marker)
            tokens[i] = length
        if progress is not None:
            progress(len(indices))
    return Replies(outputs, truncated, tokens)


def merge_responses(shares: list[Replies]) -> Replies:
    """Every process's :func:`generate_responses` share (in rank order) as one: each prompt's response from the
    process that answered it (a response is always a string, so None marks the prompts of other shares)."""
    if len(shares) == 1:
        return shares[0]
    texts = np.array([share.texts for share in shares], dtype=object)
    columns = np.arange(texts.shape[1])
    rows = np.not_equal(texts, None).argmax(axis=0)

    def merged(field: str) -> list:
        return np.array([getattr(share, field) for share in shares], dtype=object)[rows, columns].tolist()

    return Replies(merged("texts"), merged("truncated"), merged("tokens"))
