"""The one reader of user text, whatever the entry point (a command-line argument, a config value, a data or prompts
file's column): text is a string of valid Unicode, or one sentence says where it is not.

What is refused: a lone surrogate (U+D800-U+DFFF), which is what Python makes of bytes that are not UTF-8 in a
command-line argument (``\\udcff`` for byte 0xff) or of a ``"\\ud800"`` escape in JSON or YAML, and which no
file, tokenizer or JSON writer can take; in a column, a missing value, a number, list or mapping where text
belongs. A categorical (dictionary-encoded) column is text in another dtype and is read as its values.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:
    import pandas as pd

LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def invalid_at(text: str) -> int | None:
    """The position of the first character that is not valid Unicode text (a lone surrogate), or None."""
    found = LONE_SURROGATE.search(text)
    return None if found is None else found.start()


def describe_invalid(text: str, position: int) -> str:
    code = ord(text[position])
    what = (f"byte 0x{code - 0xDC00:02x}, which is not UTF-8" if 0xDC80 <= code <= 0xDCFF
            else f"a lone surrogate \\u{code:04x}")
    return f"{what}, at character {position + 1}"


def check_text(value: str, where: str) -> str:
    """``value`` if it is valid text; else one sentence naming ``where`` and the first bad character."""
    position = invalid_at(value)
    if position is not None:
        raise UserError(f"{where} is not valid text: it holds {describe_invalid(value, position)}; give UTF-8 text")
    return value


def text_column(values: pd.Series, where: str, column: str, what: str = "prompts and responses") -> pd.Series:
    """``values`` as a column of valid text (a categorical column as its values); the first row that is missing,
    not a string or not valid text is named, with ``where`` (the file) and ``column``."""
    import numpy as np
    import pandas as pd  # here: the config reads text with check_text and stays free of pandas
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object).where(values.notna(), None)
    missing = values.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise UserError(f"{where} row {row + 1} has no '{column}' value (it is null or missing); {what} must be text")
    if pd.api.types.infer_dtype(values, skipna=False) != "string":
        text = values.map(lambda value: isinstance(value, str)).to_numpy()  # only on the way to the error
        row = int(np.flatnonzero(~text)[0])
        value = values.iloc[row]
        kind = ("true/false" if isinstance(value, (bool, np.bool_)) else "a number"
                if isinstance(value, (int, float, np.number)) else {dict: "a mapping", list: "a list"}.get(
                    type(value), f"a {type(value).__name__}"))
        raise UserError(f"{where} row {row + 1} has {kind} as its '{column}' value ({str(value)[:60]!r}); {what} "
                        "must be text")
    if isinstance(values.dtype, pd.StringDtype):
        return values  # Arrow-backed text is valid UTF-8 by construction
    invalid = values.str.contains(LONE_SURROGATE.pattern, regex=True).to_numpy()
    if invalid.any():
        row = int(np.flatnonzero(invalid)[0])
        value = values.iloc[row]
        raise UserError(f"{where} row {row + 1}: its '{column}' value is not valid text: it holds "
                        f"{describe_invalid(value, invalid_at(value))}")
    return values
