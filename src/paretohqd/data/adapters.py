"""Adapters turn a raw table into the one sample schema: ``id``, ``prompt``, ``response`` (+ kept columns; an
optional boolean ``truncated`` marks a reply cut at a generation's token limit, which training never treats as
finished).

Preference-pair datasets also yield a pairs table (``pair_id``, ``prompt``, ``chosen``, ``rejected``) for fitting
reward models.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..errors import UserError
from ..text import text_column

ASSISTANT_MARKER = "\n\nAssistant:"
HUMAN_MARKER = "\n\nHuman:"
SYSTEM_MARKER = "\n\nSystem:"
"""A system message's turn, first in a prompt (only conversations read from TRL's formats write it)."""
TRUNCATED = "truncated"
SUMMARY_PROMPT_TEMPLATE = ("### Instruction: Generate a one-sentence summary of this post. "
                           "### Input: {post} ### Response: ")


_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):|^\n\n(System):")
_ROLES = {"Human": "user", "Assistant": "assistant", "System": "system"}


def prompt_to_messages(prompt: str, system_prompt: str | None = None) -> list[dict[str, str]]:
    """An HH-style prompt ("\\n\\nHuman: ...\\n\\nAssistant: ...\\n\\nAssistant:") as chat messages.

    The prompt format of every dataset here is HH-RLHF's; the trainer and the generator turn it into the policy's
    own chat template with this one function. Text without turn markers is a single user message. The final empty
    "Assistant:" turn is dropped: the chat template's generation prompt stands for it.
    """
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    pieces = _TURN.split(prompt)  # [before, turn, system, text, turn, system, text, ...]
    if len(pieces) == 1:
        return [*messages, {"role": "user", "content": prompt.strip()}]
    if pieces[0].strip():
        messages.append({"role": "user", "content": pieces[0].strip()})
    for turn, system, said in zip(pieces[1::3], pieces[2::3], pieces[3::3]):
        role = _ROLES[turn or system]
        text = said.strip()
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] += "\n\n" + text  # keep strict user/assistant alternation
        elif text or role == "user":
            messages.append({"role": role, "content": text})
    if messages and messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
        messages.pop()
    return messages


def heldout_mask(prompts: pd.Series, fraction: float) -> np.ndarray:
    """True for samples whose prompt is held out; decided by a hash of the prompt text, so stable across runs
    and the same for every reply to one prompt."""
    if fraction <= 0:
        return np.zeros(len(prompts), dtype=bool)
    hashed = pd.util.hash_pandas_object(prompts.reset_index(drop=True), index=False).to_numpy()
    return (hashed % np.uint64(1_000_000)).astype(np.float64) / 1_000_000 < fraction


def check_truncated(samples: pd.DataFrame, where: str) -> pd.DataFrame:
    """``samples`` with its ``truncated`` column (when it has one) as booleans; a value that is not one is named."""
    if TRUNCATED not in samples.columns:
        return samples
    values = samples[TRUNCATED]
    valid = values.isin([True, False]).to_numpy() & values.notna().to_numpy()
    if not valid.all():
        row = int(np.flatnonzero(~valid)[0])
        raise UserError(f"{where} row {row + 1} has {values.iloc[row]!r} in column '{TRUNCATED}', which must be true "
                        "or false (whether the reply was cut at a token limit)")
    return samples.assign(**{TRUNCATED: values.astype(bool)})


def require_columns(table: pd.DataFrame, columns: list[str], where: str, hint: str = "") -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        have = ", ".join(map(str, table.columns)) or "none"
        raise UserError(f"{where} has no column {', '.join(repr(c) for c in missing)} (columns: {have}){hint}")


def blank_text(samples: pd.DataFrame, columns: tuple[str, ...] = ("prompt", "response")) -> np.ndarray:
    """Rows where any of ``columns`` is empty or only whitespace: nothing to learn from, or to answer."""
    mask = np.zeros(len(samples), dtype=bool)
    for column in columns:
        mask |= samples[column].str.strip().eq("").to_numpy()
    return mask


def split_dialogue(dialogues: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Split HH-RLHF dialogues into prompt (through the last "\\n\\nAssistant:") and stripped final reply.

    A dialogue without an assistant turn gets a missing (None) prompt.
    """
    parts = dialogues.str.rpartition(ASSISTANT_MARKER)
    prompts = (parts[0] + parts[1]).where(parts[1] != "", None)
    return prompts, parts[2].str.strip()


def hh_rlhf_pairs(table: pd.DataFrame, where: str) -> pd.DataFrame:
    """HH-RLHF rows {chosen, rejected} -> one row per pair with each reply's prompt.

    A handful of public HH-RLHF rows have chosen and rejected dialogues that differ before the final reply
    (``same_prompt`` is False there): both replies are still valid samples, but such a row is no clean comparison
    and :func:`clean_pairs` leaves it out of reward fitting. A row whose two replies are the same text states no
    preference; public HH-RLHF has a few (11 of the 925 rows of shared/data's helpful set), so such rows are kept and
    counted by reward fitting (one text twice has no gradient, and counts as a tie). A file in which every row is
    such a pair holds no preference at all, a data error (chosen written twice, say), and is refused.
    """
    require_columns(table, ["chosen", "rejected"], where)
    # The dialogues are read as text first: a number or list would otherwise be turned into its repr and then be
    # blamed for lacking an assistant turn.
    dialogues = {c: text_column(table[c], where, c, what="HH-RLHF dialogues") for c in ("chosen", "rejected")}
    chosen_prompt, chosen = split_dialogue(dialogues["chosen"])
    rejected_prompt, rejected = split_dialogue(dialogues["rejected"])
    bad = chosen_prompt.isna() | rejected_prompt.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0]) + 1
        raise UserError(f"{where} row {row} has no '\\n\\nAssistant:' turn, so it is not an HH-RLHF dialogue")
    same_prompt = (chosen_prompt == rejected_prompt).to_numpy()
    if (same_prompt & (chosen == rejected).to_numpy()).all():
        raise UserError(f"{where} row 1: 'chosen' and 'rejected' are the same reply, as in every row of it, so it "
                        "states no preference: each row needs a preferred and a different rejected reply")
    return pd.DataFrame({
        "pair_id": np.arange(len(table)),
        "prompt": chosen_prompt.to_numpy(),
        "chosen": chosen.to_numpy(),
        "rejected_prompt": rejected_prompt.to_numpy(),
        "rejected": rejected.to_numpy(),
        "same_prompt": same_prompt,
    })


def clean_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    """Pairs whose two replies answer the same prompt: the ones usable to fit a Bradley-Terry reward model. Pairs of
    one reply twice stay: dropping them would change the pairs (and the fingerprint) the shipped heads were fitted
    on, and they leave a fit's weights unchanged; :func:`..rewards.heads.fit.fit_preference_head` counts them."""
    kept = pairs[pairs["same_prompt"]]
    return kept.drop(columns=["rejected_prompt", "same_prompt"]).reset_index(drop=True)


def pairs_to_samples(pairs: pd.DataFrame, source_name: str) -> pd.DataFrame:
    """Both replies of every pair become samples; ``label`` says which one was preferred.

    Rows are interleaved (chosen, rejected, chosen, ...) so that a prefix of the table keeps whole pairs.
    """
    n = len(pairs)
    pair_ids = np.repeat(pairs["pair_id"].to_numpy(), 2)
    labels = np.tile(np.array(["chosen", "rejected"]), n)
    prompts = np.column_stack([pairs["prompt"].to_numpy(), pairs["rejected_prompt"].to_numpy()]).ravel()
    responses = np.column_stack([pairs["chosen"].to_numpy(), pairs["rejected"].to_numpy()]).ravel()
    ids = pd.Series(pair_ids).astype(str).radd(f"{source_name}:") + ":" + labels
    return pd.DataFrame({"id": ids.to_numpy(), "prompt": prompts, "response": responses, "label": labels,
                         "pair_id": pair_ids})


def scitldr_samples(table: pd.DataFrame, where: str, template: str = SUMMARY_PROMPT_TEMPLATE) -> pd.DataFrame:
    """SciTLDR rows {source: [sentences], target: [tldr, ...]} -> one sample per (abstract, TL;DR)."""
    require_columns(table, ["source", "target"], where)
    posts = table["source"].map(lambda s: " ".join(s) if isinstance(s, (list, np.ndarray)) else str(s))
    targets = table["target"].map(lambda t: list(t) if isinstance(t, (list, np.ndarray)) else [str(t)])
    counts = targets.map(len).to_numpy()
    row_of = np.repeat(np.arange(len(table)), counts)
    within = np.concatenate([np.arange(c) for c in counts]) if len(counts) else np.array([], dtype=int)
    key = table["paper_id"].astype(str).to_numpy() if "paper_id" in table.columns else np.arange(len(table)).astype(str)
    flat_targets = [t for ts in targets for t in ts]
    return pd.DataFrame({
        "id": [f"{k}:{j}" for k, j in zip(key[row_of], within)],
        "prompt": [template.format(post=p) for p in posts.to_numpy()[row_of]],
        "response": [str(t).strip() for t in flat_targets],
        "post": posts.to_numpy()[row_of],
    })


def check_column_mapping(table: pd.DataFrame, where: str, mapping: dict[str, str]) -> None:
    """The columns that become ``prompt``, ``response``, ... (``mapping``: role -> the data's column) are distinct,
    and none is renamed onto a column of that name the data already has (which would vanish or be doubled)."""
    roles = list(mapping)
    for index, role in enumerate(roles):
        for other in roles[index + 1:]:
            if mapping[role] == mapping[other]:
                raise UserError(f"data.{role}_column and data.{other}_column are both '{mapping[role]}' in {where}: "
                                f"a sample's {role} and {other} must come from two columns")
        if mapping[role] != role and role in table.columns:
            raise UserError(f"{where} already has a column '{role}', and data.{role}_column '{mapping[role]}' would "
                            f"be renamed onto it: set data.{role}_column: {role}, or rename one of the two columns")


def column_samples(table: pd.DataFrame, where: str, prompt_column: str, response_column: str,
                   id_column: str | None, source_name: str) -> pd.DataFrame:
    """Generic tables: pick the prompt/response (and optional id) columns, keep everything else."""
    hint = "; set data.prompt_column / data.response_column"
    require_columns(table, [prompt_column, response_column] + ([id_column] if id_column else []), where, hint)
    check_column_mapping(table, where, {"prompt": prompt_column, "response": response_column})
    if id_column:
        null = table[id_column].isna().to_numpy()
        if null.any():
            raise UserError(f"{where} row {int(np.flatnonzero(null)[0]) + 1} has no '{id_column}' value "
                            "(data.id_column): every sample needs an id")
    ids = table[id_column].astype(str).to_numpy() if id_column else None
    samples = table.rename(columns={prompt_column: "prompt", response_column: "response"}).copy()
    if id_column:
        if id_column in samples.columns and id_column not in (prompt_column, response_column):
            samples = samples.drop(columns=id_column)
        samples["id"] = ids
    else:
        samples["id"] = [f"{source_name}:{i}" for i in range(len(samples))]
    for column in ("prompt", "response"):
        samples[column] = text_column(samples[column], where, column)
    samples = check_truncated(samples, where)
    front = ["id", "prompt", "response"]
    return samples[front + [c for c in samples.columns if c not in front]]
