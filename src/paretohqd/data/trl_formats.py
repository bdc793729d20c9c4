"""TRL's standard dataset formats (https://huggingface.co/docs/trl/dataset_formats) as samples (``data.adapter:
trl``): which format a table is in is told by its columns, as TRL tells it.

| columns | TRL's name | samples |
|---|---|---|
| ``messages`` | conversational language modeling | the conversation before its last message; that message |
| ``prompt``, ``completion`` | prompt-completion | the prompt and its completion |
| ``prompt``, ``completion``, ``label`` | unpaired preference | the same; ``label`` true ``chosen``, else ``rejected`` |
| ``prompt``, ``chosen``, ``rejected`` | preference (explicit prompt) | both replies, paired (``pair_id``, ``label``) |
| ``chosen``, ``rejected`` | preference (implicit prompt) | both replies after their shared beginning, paired |
| ``prompt`` | prompt-only | test prompts (``evaluate.adapter: trl``) |

Each of them standard (text) or conversational (lists of ``{"role", "content"}`` messages). A conversation becomes
the project's one prompt text, HH-RLHF's (``"\\n\\nHuman: ...\\n\\nAssistant:"``, a first system message as
``"\\n\\nSystem: ..."``), which the policy writes back as messages in its own chat template
(:func:`.adapters.prompt_to_messages`); standard text stays as it is. An implicit prompt in text form is the dialogue
up to its last ``"\\n\\nAssistant:"``, as in TRL's HH-RLHF; text with no such turn needs an explicit ``prompt``.

Conversations are read and written as Arrow arrays (one pass over all messages of all rows, no loop over rows); a
row that is not in the format is named, with the format it should be in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UserError
from ..text import text_column
from .adapters import ASSISTANT_MARKER, HUMAN_MARKER, SYSTEM_MARKER, split_dialogue

MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
ROLES = ("system", "user", "assistant")
ROLE_MARKERS = pa.array([SYSTEM_MARKER + " ", HUMAN_MARKER + " ", ASSISTANT_MARKER + " "])

FORMATS = {  # the columns that name a format, most specific first (TRL's order of checks)
    "unpaired preference": ("prompt", "completion", "label"),
    "preference": ("prompt", "chosen", "rejected"),
    "implicit-prompt preference": ("chosen", "rejected"),
    "prompt-completion": ("prompt", "completion"),
    "conversational language modeling": ("messages",),
    "prompt-only": ("prompt",),
    "language modeling": ("text",),
}
SAMPLE_FORMATS = ("unpaired preference", "preference", "implicit-prompt preference", "prompt-completion",
                  "conversational language modeling")


def detect_format(table: pd.DataFrame, where: str, for_prompts: bool = False) -> str:
    """The TRL format ``table``'s columns name; one sentence when none does (or only one that has no replies)."""
    allowed = ("prompt-only", *SAMPLE_FORMATS) if for_prompts else SAMPLE_FORMATS
    found = next((name for name, columns in FORMATS.items() if set(columns) <= set(table.columns)), None)
    if for_prompts and found in SAMPLE_FORMATS and "prompt" not in table.columns:
        return found  # a conversation's prompts are what comes before its last message
    if for_prompts and found is not None and "prompt" in table.columns:
        return "prompt-only"
    if found not in allowed:
        have = ", ".join(map(str, table.columns)) or "none"
        expected = "; ".join(f"{name}: {', '.join(FORMATS[name])}" for name in allowed)
        said = (f" It is TRL's {found} format, which has no prompt/reply split to learn from." if found else "")
        raise UserError(f"{where} is in none of TRL's dataset formats that data.adapter trl reads (its columns: "
                        f"{have}; expected {expected}).{said}")
    return found


def is_conversational(values: pd.Series) -> bool:
    """Whether a column holds conversations (lists of messages), as TRL's ``is_conversational`` tells it from the
    first row."""
    first = values.iloc[0] if len(values) else None
    return isinstance(first, (list, tuple, np.ndarray))


def messages_array(values: pd.Series, where: str, column: str) -> pa.ListArray:
    """A column of conversations as Arrow lists of {role, content}; a row that is not one is named."""
    try:
        array = pa.array(values.to_list(), type=MESSAGES, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        row = next(i for i, value in enumerate(values.to_list()) if not _is_message_list(value))
        raise UserError(f"{where} row {row + 1}: '{column}' is {str(values.iloc[row])[:80]!r}, not a list of "
                        "{'role': ..., 'content': text} messages (TRL's conversational format)") from None
    if array.null_count:
        _fail(where, int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0]), column, "is missing")
    flat = array.flatten()
    parents = pc.list_parent_indices(array).to_numpy()
    lengths = pc.list_value_length(array).to_numpy()
    if (lengths == 0).any():
        _fail(where, int(np.flatnonzero(lengths == 0)[0]), column, "is an empty conversation")
    roles = pc.index_in(flat.field("role"), value_set=pa.array(ROLES)).to_numpy(zero_copy_only=False)
    bad_role = np.isnan(roles.astype(float))
    if bad_role.any():
        _fail(where, int(parents[np.flatnonzero(bad_role)[0]]), column,
              f"has a message whose role is not one of {', '.join(ROLES)}")
    if flat.field("content").null_count:
        _fail(where, int(parents[np.flatnonzero(flat.field("content").is_null().to_numpy(zero_copy_only=False))[0]]),
              column, "has a message without text content")
    starts = array.offsets.to_numpy()[:-1] - array.offsets[0].as_py()
    late_system = (roles == 0) & (np.arange(len(flat)) != np.repeat(starts, lengths))
    if late_system.any():
        _fail(where, int(parents[np.flatnonzero(late_system)[0]]), column,
              "has a system message after the first message")
    return array


def render(array: pa.ListArray, drop_last: bool = False) -> np.ndarray:
    """Each conversation as HH-RLHF text (``"\\n\\nHuman: ..."``), without its last message where ``drop_last``."""
    flat = array.flatten()
    roles = pc.index_in(flat.field("role"), value_set=pa.array(ROLES))
    pieces = pc.binary_join_element_wise(ROLE_MARKERS.take(roles), flat.field("content"), "")
    offsets = array.offsets.to_numpy() - array.offsets[0].as_py()
    if drop_last:
        last = offsets[1:] - 1
        keep = np.ones(len(pieces), dtype=bool)
        keep[last] = False
        pieces = pieces.filter(pa.array(keep))
        offsets = offsets - np.arange(len(offsets))
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pieces), "")
    return joined.to_numpy(zero_copy_only=False).astype(object)


def last_messages(array: pa.ListArray, where: str, column: str, role: str = "assistant") -> np.ndarray:
    """The content of each conversation's last message, which must be ``role``'s."""
    flat = array.flatten()
    offsets = array.offsets.to_numpy() - array.offsets[0].as_py()
    last = pa.array(offsets[1:] - 1)
    roles = flat.field("role").take(last).to_numpy(zero_copy_only=False)
    wrong = roles != role
    if wrong.any():
        _fail(where, int(np.flatnonzero(wrong)[0]), column, f"does not end with an {role} message")
    return flat.field("content").take(last).to_numpy(zero_copy_only=False).astype(object)


def conversation_prompts(array: pa.ListArray, where: str, column: str) -> np.ndarray:
    """Prompts from conversations that end with the user's turn: their text and the assistant's turn to come."""
    last_messages(array, where, column, role="user")
    return render(array) + ASSISTANT_MARKER


def prompt_texts(values: pd.Series, where: str, column: str = "prompt") -> np.ndarray:
    """A ``prompt`` column, text or conversational, as prompt text."""
    if is_conversational(values):
        return conversation_prompts(messages_array(values, where, column), where, column)
    return text_column(values, where, column).to_numpy(dtype=object)


def reply_texts(values: pd.Series, where: str, column: str) -> np.ndarray:
    """A reply column (``completion``, ``chosen``, ``rejected`` after an explicit prompt): text, or a conversation
    whose last message is the assistant's reply."""
    if is_conversational(values):
        return last_messages(messages_array(values, where, column), where, column)
    return text_column(values, where, column).to_numpy(dtype=object)


def split_conversations(values: pd.Series, where: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(prompt, reply) of each conversation: everything before its last message, and that (assistant) message."""
    array = messages_array(values, where, column)
    replies = last_messages(array, where, column)
    return render(array, drop_last=True) + ASSISTANT_MARKER, replies


def trl_samples(table: pd.DataFrame, where: str, source_name: str, id_column: str | None) -> pd.DataFrame:
    """``table`` in any of TRL's formats that hold replies, as samples (``id``, ``prompt``, ``response``, other
    columns kept; preference pairs as two samples with ``pair_id`` and ``label``)."""
    kind = detect_format(table, where)
    consumed = [c for c in FORMATS[kind] if c != "label"]
    rest = table.drop(columns=consumed + ([id_column] if id_column else []))
    keys = _row_keys(table, where, source_name, id_column)
    if kind in ("preference", "implicit-prompt preference"):
        if kind == "preference":
            prompts = prompt_texts(table["prompt"], where)
            chosen, rejected = (reply_texts(table[c], where, c) for c in ("chosen", "rejected"))
            rejected_prompts = prompts
        else:
            (prompts, chosen), (rejected_prompts, rejected) = (_implicit(table[c], where, c)
                                                               for c in ("chosen", "rejected"))
            differ = prompts != rejected_prompts
            if differ.any():
                row = int(np.flatnonzero(differ)[0])
                raise UserError(f"{where} row {row + 1}: 'chosen' and 'rejected' differ before their last reply, so "
                                "they share no prompt (TRL's implicit-prompt preference format); give a 'prompt' "
                                "column")
        same = np.asarray(chosen == rejected, dtype=bool)  # the prompts are one: one reply twice is no preference
        if same.any():
            row = int(np.flatnonzero(same)[0])
            raise UserError(f"{where} row {row + 1}: 'chosen' and 'rejected' are the same reply, so the row states no "
                            f"preference (TRL's {kind} format): give a rejected reply that differs, or leave the row "
                            "out")
        pairs = pd.DataFrame({"key": keys, "prompt": prompts, "chosen": chosen, "rejected": rejected})
        samples = pd.DataFrame({
            "id": np.column_stack([keys + ":chosen", keys + ":rejected"]).ravel(),
            "prompt": np.repeat(pairs["prompt"].to_numpy(), 2),
            "response": np.column_stack([chosen, rejected]).ravel(),
            "label": np.tile(np.array(["chosen", "rejected"], dtype=object), len(pairs)),
            "pair_id": np.repeat(np.arange(len(pairs)), 2)})
        rest = rest.loc[rest.index.repeat(2)].reset_index(drop=True)
    elif kind == "conversational language modeling":
        prompts, replies = split_conversations(table["messages"], where, "messages")
        samples = pd.DataFrame({"id": keys, "prompt": prompts, "response": replies})
    else:
        samples = pd.DataFrame({"id": keys, "prompt": prompt_texts(table["prompt"], where),
                                "response": reply_texts(table["completion"], where, "completion")})
        if kind == "unpaired preference":
            labels = table["label"]
            if not labels.isin([True, False]).all():
                row = int(np.flatnonzero(~labels.isin([True, False]).to_numpy())[0])
                value = labels.iloc[row]
                # "false" in quotes is the commonest slip, and a non-empty string would read as true
                text = (": it is text, not a boolean; write true or false without quotes" if isinstance(value, str)
                        else "")
                raise UserError(f"{where} row {row + 1}: 'label' is {value!r}, not true or false{text} (TRL's "
                                "unpaired preference format)")
            samples["label"] = np.where(labels.astype(bool).to_numpy(), "chosen", "rejected")
            rest = rest.drop(columns="label")
    for column in ("prompt", "response"):
        samples[column] = text_column(samples[column], where, column)
    clash = [c for c in rest.columns if c in samples.columns]
    return pd.concat([samples, rest.drop(columns=clash).reset_index(drop=True)], axis=1)


def trl_prompts(table: pd.DataFrame, where: str) -> pd.DataFrame:
    """Test prompts from any TRL format: a ``prompt`` column, or the conversations' beginnings."""
    kind = detect_format(table, where, for_prompts=True)
    if kind == "prompt-only":
        prompts = prompt_texts(table["prompt"], where)
        return table.assign(prompt=prompts)
    column = FORMATS[kind][0]
    prompts, _ = (split_conversations(table[column], where, column) if is_conversational(table[column])
                  else _implicit(table[column], where, column))
    return table.drop(columns=list(FORMATS[kind])).assign(prompt=prompts)


def _implicit(values: pd.Series, where: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    if is_conversational(values):
        return split_conversations(values, where, column)
    prompts, replies = split_dialogue(text_column(values, where, column))
    if prompts.isna().any():
        row = int(np.flatnonzero(prompts.isna().to_numpy())[0])
        raise UserError(f"{where} row {row + 1}: '{column}' is text with no '\\n\\nAssistant:' turn, so its prompt "
                        "cannot be told from its reply (TRL's implicit-prompt format in text); give a 'prompt' column")
    return prompts.to_numpy(dtype=object), replies.to_numpy(dtype=object)


def _row_keys(table: pd.DataFrame, where: str, source_name: str, id_column: str | None) -> np.ndarray:
    if id_column is None:
        return (pd.Series(np.arange(len(table))).astype(str).radd(f"{source_name}:")).to_numpy(dtype=object)
    if id_column not in table.columns:
        have = ", ".join(map(str, table.columns))
        raise UserError(f"{where} has no column '{id_column}' (data.id_column; its columns: {have})")
    if table[id_column].isna().any():
        row = int(np.flatnonzero(table[id_column].isna().to_numpy())[0])
        raise UserError(f"{where} row {row + 1} has no '{id_column}' value (data.id_column): every sample needs an id")
    return table[id_column].astype(str).to_numpy(dtype=object)


def _is_message_list(value) -> bool:
    return isinstance(value, (list, tuple, np.ndarray)) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value)


def _fail(where: str, row: int, column: str, what: str):
    raise UserError(f"{where} row {row + 1}: '{column}' {what} (TRL's conversational format: a list of "
                    "{'role': system|user|assistant, 'content': text} messages)")
