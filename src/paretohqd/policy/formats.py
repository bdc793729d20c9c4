"""How prompts are written for a tokenizer: its chat template, or, for a base model without one, the plain
HH-RLHF format RiC and the paper use."""

from __future__ import annotations


def plain_bos_text(tokenizer) -> str:
    """The BOS token as text when the tokenizer puts it before a text by itself (Llama's), else nothing: what a
    plain-format prompt starts with."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return ""
    return tokenizer.bos_token if tokenizer("a")["input_ids"][:1] == [bos] else ""


def prompt_format(tokenizer) -> str:
    """What a run on this tokenizer writes prompts as, in words (``check_model`` says it before any work)."""
    if getattr(tokenizer, "chat_template", None) is not None:
        return "its chat template"
    bos = plain_bos_text(tokenizer)
    return ("the plain HH-RLHF format (" + (f"{bos} + " if bos else "")
            + "'\\n\\nHuman: ... \\n\\nAssistant:', the reply after a space, then its EOS), as RiC and the paper do "
            "for a base model without a chat template")
