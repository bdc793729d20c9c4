"""Batched sampling from a causal LM.

Prompts are in the project's HH format and go through the model's chat template; batches are length-sorted and
left-padded; each batch draws from its own seeded generator state, so a resumed run reproduces the same text.
Outputs are cut at the next turn marker: a model that starts writing the user's next turn has finished its reply.
"""

from __future__ import annotations

import re
from typing import Callable

import numpy as np

from ..config import SamplingConfig
from ..data import prompt_to_messages

_NEXT_TURN = re.compile(r"(?:^|\n)\s*(?:Human|Assistant|User)\s*:|<\|im_start\|>|<\|im_end\|>")


def clean_response(text: str) -> str:
    """Cut at the next turn marker and strip."""
    match = _NEXT_TURN.search(text)
    return (text[: match.start()] if match else text).strip()


def sampling_record(sampling: SamplingConfig, seed: int) -> dict:
    return {"do_sample": sampling.do_sample, "temperature": sampling.temperature, "top_p": sampling.top_p,
            "top_k": sampling.top_k, "max_new_tokens": sampling.max_new_tokens, "batch_size": sampling.batch_size,
            "seed": seed}


def generate_responses(model, tokenizer, prompts: list[str], sampling: SamplingConfig, seed: int,
                       system_prompt: str | None = None, max_prompt_tokens: int = 768,
                       progress: Callable[[int], None] | None = None) -> list[str]:
    """One sampled response per prompt, in the order of ``prompts``."""
    import torch

    from ..train.sft import end_of_turn_ids, truncate_prompt

    tokenizer.padding_side = "left"  # decoder-only generation continues from the right edge
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    texts = [tokenizer.apply_chat_template(prompt_to_messages(truncate_prompt(p, tokenizer, max_prompt_tokens),
                                                              system_prompt),
                                           add_generation_prompt=True, tokenize=False) for p in prompts]
    lengths = np.array([len(t) for t in texts])
    order = np.argsort(-lengths, kind="stable")
    outputs: list[str] = [""] * len(prompts)
    model.eval()
    device = next(model.parameters()).device
    for batch_number, start in enumerate(range(0, len(order), sampling.batch_size)):
        indices = order[start:start + sampling.batch_size]
        encoded = tokenizer([texts[i] for i in indices], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(device)
        torch.manual_seed(seed * 100_003 + batch_number)
        kwargs = dict(max_new_tokens=sampling.max_new_tokens, do_sample=sampling.do_sample,
                      eos_token_id=end_of_turn_ids(tokenizer), pad_token_id=tokenizer.pad_token_id)
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
