"""Data loading: any supported source -> one sample table (id, prompt, response, kept columns) and, for
preference-pair datasets, a pairs table (pair_id, prompt, chosen, rejected)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..text import text_column
from .adapters import (
    ASSISTANT_MARKER,
    HUMAN_MARKER,
    SUMMARY_PROMPT_TEMPLATE,
    TRUNCATED,
    blank_text,
    clean_pairs,
    column_samples,
    heldout_mask,
    hh_rlhf_pairs,
    pairs_to_samples,
    prompt_to_messages,
    require_columns,
    scitldr_samples,
)
from .loaders import describe, read_table, source_spec
from .trl_formats import trl_prompts, trl_samples

ADAPTERS = ("columns", "hh_rlhf", "scitldr", "trl")

__all__ = [
    "ADAPTERS",
    "ASSISTANT_MARKER",
    "HUMAN_MARKER",
    "SUMMARY_PROMPT_TEMPLATE",
    "TRUNCATED",
    "LoadedData",
    "distinct_prompts",
    "fingerprint",
    "heldout_mask",
    "load_data",
    "load_pairs",
    "load_prompts",
    "prompt_columns",
    "prompt_to_messages",
]


EMPTY_TEXT = ("drop", "error")


@dataclass
class LoadedData:
    samples: pd.DataFrame
    pairs: pd.DataFrame | None  # only for preference-pair adapters
    dropped: list[str] = field(default_factory=list)
    """Ids of the samples left out because their prompt or response is empty or only whitespace."""


EMBEDDED_DATASETS = {
    "embedded:demo": Path(__file__).resolve().parents[1] / "assets" / "demo" / "samples.jsonl",
    "embedded:demo-test": Path(__file__).resolve().parents[1] / "assets" / "demo" / "prompts_test.jsonl",
}


def resolve_source(source):
    """Datasets that ship inside the package are named ``embedded:<name>``; a source mapping is checked here."""
    if isinstance(source, dict):
        return source_spec(source, split="")  # its split is filled in where it is read
    if isinstance(source, str) and source.startswith("~"):
        return str(Path(source).expanduser())
    if isinstance(source, str) and source.startswith("embedded:"):
        if source not in EMBEDDED_DATASETS:
            raise UserError(f"unknown embedded dataset '{source}' (known: {', '.join(EMBEDDED_DATASETS)})")
        return str(EMBEDDED_DATASETS[source])
    return source


def _source_name(source) -> str:
    """What sample ids start with: a file's stem, or a Hub id (with the configuration and folder it reads)."""
    if isinstance(source, dict):
        parts = [source["path"], source.get("name"), source.get("data_dir")]
        return "__".join(p.replace("/", "__") for p in parts if p)
    return Path(source).stem if Path(source).exists() else source.replace("/", "__")


def load_data(sources: str | list[str], adapter: str = "columns", fmt: str = "auto", split: str = "train",
              prompt_column: str = "prompt", response_column: str = "response", id_column: str | None = None,
              max_samples: int | None = None, prompt_template: str = SUMMARY_PROMPT_TEMPLATE,
              empty_text: str = "drop") -> LoadedData:
    """Load one or several sources with one adapter into the sample schema; ids are unique across sources.
    Samples whose prompt or response is empty or only whitespace are left out (``empty_text='drop'``, their ids in
    ``dropped``) or refused (``'error'``)."""
    if empty_text not in EMPTY_TEXT:
        raise UserError(f"data.empty_text must be one of {', '.join(EMPTY_TEXT)}, not {empty_text!r}")
    sources = [sources] if isinstance(sources, (str, dict)) else list(sources)
    if not sources:
        raise UserError("data.source is empty: give a file path, a saved dataset folder or a Hub id")
    if adapter not in ADAPTERS:
        raise UserError(f"unknown data.adapter '{adapter}' (use one of: {', '.join(ADAPTERS)})")
    sample_parts, pair_parts = [], []
    for source in map(resolve_source, sources):
        table = read_table(source, fmt, split)
        where = describe(source)
        if table.empty:
            raise UserError(f"the dataset {where} has no samples")
        name = _source_name(source)
        if adapter == "hh_rlhf":
            pairs = hh_rlhf_pairs(table, where)
            pairs.insert(0, "source", name)
            pair_parts.append(pairs)
            samples = pairs_to_samples(pairs, name)
        elif adapter == "scitldr":
            samples = scitldr_samples(table, where, prompt_template)
        elif adapter == "trl":
            samples = trl_samples(table, where, name, id_column)
        else:
            samples = column_samples(table, where, prompt_column, response_column, id_column, name)
        if "source" not in samples.columns:  # a dataset's own 'source' column wins
            samples.insert(1, "source", name)
        sample_parts.append(samples)
    samples = pd.concat(sample_parts, ignore_index=True)
    if max_samples is not None:
        samples = samples.iloc[:max_samples].reset_index(drop=True)
    blank = blank_text(samples)
    dropped = samples["id"][blank].tolist()
    if dropped and empty_text == "error":
        first = samples[blank].iloc[0]
        column = "prompt" if not first["prompt"].strip() else "response"
        raise UserError(f"sample '{first['id']}' of {', '.join(map(describe, sources))} has an empty {column} "
                        f"({len(dropped)} samples have an empty prompt or response; data.empty_text: drop leaves them "
                        "out)")
    if dropped:
        samples = samples[~blank].reset_index(drop=True)
    if samples.empty:
        raise UserError(f"the dataset {', '.join(map(describe, sources))} has no samples"
                        + (" with a non-empty prompt and response" if dropped else ""))
    duplicated = samples["id"].duplicated()
    if duplicated.any():
        raise UserError(f"sample id '{samples['id'][duplicated.idxmax()]}' appears more than once; ids must be unique "
                        "(check data.id_column)")
    pairs = pd.concat(pair_parts, ignore_index=True) if pair_parts else None
    return LoadedData(samples=samples, pairs=pairs, dropped=dropped)


def fingerprint(frame: pd.DataFrame) -> str:
    """The content of a table, every column and the column names (row order counts): equal content, equal print,
    whatever file it came from or when that file was written.

    Each value is hashed as its text (a score 0.5 read from JSON or from Parquet prints the same). Row hashes do not
    depend on the other rows, so they are made ``FINGERPRINT_ROWS`` rows at a time: the value is that of
    ``hash_pandas_object(frame.astype(str))``, without turning a whole million-row table into strings at once."""
    hashed = np.concatenate([np.zeros(0, dtype=np.uint64)] + [
        pd.util.hash_pandas_object(frame.iloc[start:start + FINGERPRINT_ROWS].astype(str), index=False).to_numpy()
        for start in range(0, len(frame), FINGERPRINT_ROWS)])
    names = "|".join(map(str, frame.columns)).encode()
    return hashlib.sha256(hashed.tobytes() + names).hexdigest()[:20]


FINGERPRINT_ROWS = 65_536


PER_RESPONSE_COLUMNS = ("id", "response", "label", "pair_id", "source", TRUNCATED)


def distinct_prompts(samples: pd.DataFrame, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per distinct prompt (first occurrence), keeping its context columns (e.g. a summary's ``post``)
    so that objectives reading them can score new responses to it; per-response columns are dropped."""
    return prompt_columns(samples.drop_duplicates("prompt").reset_index(drop=True), drop)


def prompt_columns(samples: pd.DataFrame, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    """The prompt and its context columns of every row: per-response columns (and ``drop``) left out."""
    return samples.drop(columns=[c for c in (*PER_RESPONSE_COLUMNS, *drop) if c in samples.columns])


def load_prompts(sources: str | list[str], adapter: str = "columns", prompt_column: str = "prompt",
                 fmt: str = "auto", split: str = "train", column_setting: str = "evaluate.prompt_column"
                 ) -> pd.DataFrame:
    """Distinct prompts with their context columns (no responses needed), in first-seen order; ``column_setting``:
    what the user sets to name the prompt column (the config's key, or a command's option)."""
    if adapter not in ("columns", "trl"):
        return distinct_prompts(load_data(sources, adapter=adapter, fmt=fmt, split=split).samples)
    parts = []
    for source in map(resolve_source, [sources] if isinstance(sources, (str, dict)) else list(sources)):
        table = read_table(source, fmt, split)
        where = describe(source)
        if adapter == "trl":
            parts.append(trl_prompts(table, where))
            continue
        require_columns(table, [prompt_column], where, f"; set {column_setting}")
        table = table.drop(columns=[c for c in ("prompt",) if c != prompt_column and c in table.columns])
        table = table.rename(columns={prompt_column: "prompt"})
        table["prompt"] = text_column(table["prompt"], where, prompt_column, "prompts")
        parts.append(table)
    prompts = distinct_prompts(pd.concat(parts, ignore_index=True))
    prompts = prompts[~blank_text(prompts, ("prompt",))].reset_index(drop=True)
    if prompts.empty:
        named = ", ".join(map(describe, [sources] if isinstance(sources, (str, dict)) else sources))
        raise UserError(f"no prompts in {named} (every one is empty or only whitespace)")
    return prompts


def load_pairs(sources: str | list[str], fmt: str = "auto", split: str = "train") -> pd.DataFrame:
    """Preference pairs (HH-RLHF format) for fitting reward models."""
    pairs = load_data(sources, adapter="hh_rlhf", fmt=fmt, split=split).pairs
    assert pairs is not None
    return clean_pairs(pairs)
