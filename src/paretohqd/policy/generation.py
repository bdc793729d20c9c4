"""Batched sampling with Hugging Face ``generate`` (the CPU and single-GPU backend).

Prompts go through the policy's chat template and truncation rule; batches are length-sorted and left-padded; each
batch draws from its own seeded generator state, so a resumed run reproduces the same text. Outputs are cut at the
next turn marker: a model that starts writing the user's next turn has finished its reply.
"""

from __future__ import annotations

import re
from typing import Callable

import numpy as np

from .policy import Policy

_NEXT_TURN = re.compile(r"(?:^|\n)\s*(?:Human|Assistant|User)\s*:|<\|im_start\|>|<\|im_end\|>")
SAMPLING_KEYS = ("do_sample", "temperature", "top_p", "top_k", "max_new_tokens", "batch_size")


def clean_response(text: str) -> str:
    """Cut at the next turn marker and strip."""
    match = _NEXT_TURN.search(text)
    return (text[: match.start()] if match else text).strip()


def sampling_record(sampling, seed: int) -> dict:
    """The sampling settings as recorded beside every generation file."""
    return {**{key: getattr(sampling, key) for key in SAMPLING_KEYS}, "seed": seed}


def generate_responses(policy: Policy, prompts: list[str], sampling, seed: int,
                       progress: Callable[[int], None] | None = None,
                       share: tuple[int, int] = (0, 1)) -> list[str | None]:
    """One sampled response per prompt, in the order of ``prompts``.

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
        for i, text in zip(indices, tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
            outputs[i] = clean_response(text)
        if progress is not None:
            progress(len(indices))
    return outputs


def merge_responses(shares: list[list[str | None]]) -> list[str]:
    """Every process's :func:`generate_responses` share (in rank order) as one list: each prompt's response from
    the process that answered it (a response is always a string, so None marks the prompts of other shares)."""
    if len(shares) == 1:
        return shares[0]
    stacked = np.array(shares, dtype=object)
    answered = np.not_equal(stacked, None)
    return stacked[answered.argmax(axis=0), np.arange(stacked.shape[1])].tolist()
