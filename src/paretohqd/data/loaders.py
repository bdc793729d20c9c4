"""Read a raw table from a local file (JSONL, JSON, Parquet, CSV), a saved HF dataset, or a Hub dataset id.

A source is a path or Hub id, or a mapping that also says which part of a Hub dataset to read, in the words of
``datasets.load_dataset``: ``{path: Anthropic/hh-rlhf, data_dir: harmless-base, revision: <commit>, split: train}``
(``name`` is a dataset's configuration)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ..errors import UserError
from ..text import invalid_at

LOCAL_FORMATS = {".jsonl": "jsonl", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
SOURCE_KEYS = ("path", "name", "data_dir", "revision", "split")
"""What a source mapping may say: ``datasets.load_dataset``'s own arguments of those names."""


def source_spec(source, split: str) -> dict:
    """``source`` (a path or Hub id, or a mapping of :data:`SOURCE_KEYS`) as a full mapping; ``split`` unless it
    names its own. One sentence for a mapping that is not one."""
    if isinstance(source, str):
        return {"path": _expanded(source), "name": None, "data_dir": None, "revision": None, "split": split}
    if not isinstance(source, dict):
        raise UserError(f"a data source must be a path, a Hub id or a mapping with 'path', not {source!r}")
    unknown = [key for key in source if key not in SOURCE_KEYS]
    if unknown:
        raise UserError(f"data source {source!r} has unknown key '{unknown[0]}' (known: {', '.join(SOURCE_KEYS)})")
    if not isinstance(source.get("path"), str) or not source["path"]:
        raise UserError(f"data source {source!r} has no 'path' (a file, a saved dataset folder or a Hub id)")
    wrong = [key for key in SOURCE_KEYS if source.get(key) is not None and not isinstance(source[key], str)]
    if wrong:
        raise UserError(f"data source {source!r}: '{wrong[0]}' must be text, not {source[wrong[0]]!r}")
    return {"name": None, "data_dir": None, "revision": None, **source, "path": _expanded(source["path"]),
            "split": source.get("split") or split}


def _expanded(path: str) -> str:
    """``~/data.jsonl`` as the shell would have it (a Hub id never starts with ``~``)."""
    return os.path.expanduser(path) if path.startswith("~") else path


def describe(source) -> str:
    """A source as the error messages and logs name it: its path, and the part of a Hub dataset it reads."""
    if isinstance(source, str):
        return source
    parts = [f"{key} {source[key]}" for key in ("name", "data_dir", "revision") if source.get(key)]
    return source["path"] + (f" ({', '.join(parts)})" if parts else "")


def detect_format(source: str) -> str:
    path = Path(source)
    if path.is_dir():
        return "hf_disk"
    if path.suffix.lower() in LOCAL_FORMATS:
        return LOCAL_FORMATS[path.suffix.lower()]
    if path.exists():
        raise UserError(f"cannot tell the format of data file '{source}': name it .jsonl, .json, .parquet or .csv, "
                        "or set data.format")
    if "/" in source and not source.startswith((".", "/")) and source.count("/") == 1:
        return "hub"
    raise UserError(f"data file '{source}' does not exist")


def read_table(source, fmt: str = "auto", split: str = "train") -> pd.DataFrame:
    """Load ``source`` (see :func:`source_spec`) into a DataFrame of its raw columns; errors name the file (and line
    for JSONL)."""
    spec = source_spec(source, split)
    source, split = spec["path"], spec["split"]
    fmt = detect_format(source) if fmt == "auto" else fmt
    hub_only = [key for key in ("name", "data_dir", "revision") if spec[key] is not None]
    if hub_only and fmt != "hub":
        raise UserError(f"data source '{source}' is a local {fmt} source, but sets '{hub_only[0]}', which only a Hub "
                        "dataset takes")
    if fmt in ("jsonl", "json", "parquet", "csv") and not Path(source).is_file():
        raise UserError(f"data file '{source}' does not exist")
    if fmt == "jsonl":
        return _read_jsonl(Path(source))
    if fmt == "json":
        try:
            return pd.read_json(source)
        except ValueError as exc:
            raise UserError(f"data file '{source}' is not valid JSON: {exc}") from None
    if fmt == "parquet":
        try:
            return pd.read_parquet(source)
        except Exception as exc:  # noqa: BLE001 (pyarrow raises several types for corrupt files)
            raise UserError(f"data file '{source}' is not a readable Parquet file: {exc}") from None
    if fmt == "csv":
        try:
            return pd.read_csv(source, keep_default_na=False)
        except Exception as exc:  # noqa: BLE001 (pandas' parser raises several types)
            raise UserError(f"data file '{source}' is not a readable CSV file: {exc}") from None
    if fmt == "hf_disk":
        import datasets

        try:
            loaded = datasets.load_from_disk(source)
        except Exception as exc:  # noqa: BLE001 (datasets raises several types for a folder it cannot read)
            raise UserError(f"'{source}' is not a dataset saved with datasets.save_to_disk: {exc}") from None
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise UserError(f"saved dataset '{source}' has no split '{split}' (splits: {', '.join(loaded)})")
            loaded = loaded[split]
        return loaded.to_pandas()
    if fmt == "hub":
        import datasets

        try:
            return datasets.load_dataset(source, name=spec["name"], data_dir=spec["data_dir"],
                                         revision=spec["revision"], split=split).to_pandas()
        except Exception as exc:  # noqa: BLE001 (no network, a wrong id, a wrong part: each its own type)
            raise UserError(f"could not load Hub dataset '{describe(spec)}' split '{split}' "
                            f"(no network, or the id, name, data_dir or revision is wrong): {exc}") from None
    raise UserError(f"unknown data.format '{fmt}' (use auto, jsonl, json, parquet, csv, hf_disk or hub)")


def _read_jsonl(path: Path) -> pd.DataFrame:
    import pyarrow.json as paj

    try:
        # pyarrow parses in C; it is an order of magnitude faster than json.loads per line on large files.
        table = paj.read_json(path)
        table.validate(full=True)  # pyarrow does not check UTF-8 while parsing; this does
        return table.to_pandas()
    except Exception:  # noqa: BLE001 (any failure: the slow path below finds the line and says what is wrong)
        pass
    # Slow path only to report where the file is broken (pyarrow's errors give no line number), or for
    # rows whose types pyarrow cannot unify.
    rows = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise UserError(f"{path} line {number} is not UTF-8 text") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path} line {number} is not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise UserError(f"{path} line {number} is a JSON {type(row).__name__}, expected an object")
            position = invalid_at(read := json.dumps(row, ensure_ascii=False))
            if position is not None:  # a "\ud800" escape: no text column can hold it
                raise UserError(f"{path} line {number} is not valid text: it holds a lone surrogate escape "
                                f"\\u{ord(read[position]):04x}")
            rows.append(row)
    return pd.DataFrame(rows)
