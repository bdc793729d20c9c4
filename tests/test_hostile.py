"""A catalogue of hostile inputs, as a hostile user would try them.

Every refused input must end the command with a non-zero exit code (2 for bad input or configuration; a
file-system failure may be 1 or 2), exactly one line on stderr that starts ``paretohqd: error:`` and names what is
wrong and where, no traceback, no partial file (``*.tmp``, ``*.partial*``, a ``.complete`` marker or a manifest entry
saying done for work that did not finish), and, on a directory with earlier results, those results byte for byte.

Most cases run the CLI in this process (``paretohqd.cli.main``, fast); a few run ``python -m paretohqd.cli`` in a
subprocess to see the real exit code, signals and file permissions. Cases are grouped by area in parametrize
tables; fixtures share one finished score+select directory and one tiny-policy run.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import io as _io
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import paretohqd
from paretohqd.cli import main

from .conftest import REPO
from .test_cli import write_config
from .test_pipeline import write_run_config

# ---------------------------------------------------------------------------------------------------------------
# How a case is run and judged.


@dataclass
class Result:
    code: int | None
    out: str
    err: str
    exc: BaseException | None = None

    @property
    def lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    def describe(self) -> str:
        if self.exc is not None:
            return f"uncaught {type(self.exc).__name__}: {str(self.exc).splitlines()[0] if str(self.exc) else ''}"
        last = self.lines[-1] if self.lines else "<nothing on stderr>"
        first = f" begins: {self.lines[0][:160]!r} ..." if len(self.lines) > 1 else ""
        return f"exit {self.code}; stderr ({len(self.lines)} lines){first} ends: {last[:400]}"


def cli(*argv) -> Result:
    """``paretohqd ARGV`` in this process; an exception escaping ``main`` is what a user would see as a traceback."""
    out, err = _io.StringIO(), _io.StringIO()
    code, exc = None, None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as stop:  # argparse
            code = stop.code if isinstance(stop.code, int) else 1
        except Exception as error:  # noqa: BLE001 - the case is judged below
            exc = error
    text = err.getvalue()
    if exc is not None:
        text += "\nTraceback (most recent call last):\n" + "".join(traceback.format_exception_only(exc))
    return Result(code, out.getvalue(), text, exc)


def subprocess_cli(*argv, timeout=120, **kwargs) -> Result:
    env = {**os.environ, "PARETOHQD_PROGRESS": "0", **kwargs.pop("env", {})}
    done = subprocess.run([sys.executable, "-m", "paretohqd.cli", *map(str, argv)], capture_output=True, text=True,
                          cwd=str(REPO), env=env, timeout=timeout, **kwargs)
    return Result(done.returncode, done.stdout, done.stderr)


def partial_files(root: Path) -> list[str]:
    """Leftovers of an unfinished write: temporary files, staging folders, reuse links."""
    found = []
    for path in Path(root).rglob("*"):
        name = path.name
        if name.endswith((".tmp", ".partial")) or ".partial" in name or ".reuse" in name:
            found.append(str(path.relative_to(root)))
    return sorted(found)


def dishonest_manifest(run: Path) -> list[str]:
    """Manifest entries that say done for outputs that are not there, and models that look finished but whose unit
    did not finish."""
    manifest_path = Path(run) / "manifest.json"
    if not manifest_path.is_file():
        return []
    manifest = json.loads(manifest_path.read_text())
    problems = []
    for name, entry in manifest.get("units", {}).items():
        if entry.get("status") == "done":
            missing = [p for p in entry.get("outputs", ()) if not (Path(p) if Path(p).is_absolute()
                                                                   else Path(run) / p).exists()]
            if missing:
                problems.append(f"{name} is done but {missing[0]} is missing")
        elif name.startswith("train/"):
            folder = Path(run) / entry.get("outputs", [""])[0]
            if (folder / ".complete").exists():
                problems.append(f"{name} is {entry.get('status')} but {folder.name} is marked complete")
    for stage, entry in manifest.get("stages", {}).items():
        units = [u for u in manifest.get("units", {}).values() if u.get("stage") == stage]
        if entry.get("status") == "done" and any(u.get("status") != "done" for u in units):
            problems.append(f"stage {stage} is marked done with unfinished units")
    return problems


RESULT_EXCLUDED = ("manifest.json", "env.json", "config.resolved.yaml")


def snapshot(run: Path) -> dict[str, bytes]:
    """Every result file's bytes (the manifest, env and resolved config are records of the latest command; logs/
    is appended to by every command, a refused one included)."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(Path(run).rglob("*"))
            if p.is_file() and p.name not in RESULT_EXCLUDED and p.relative_to(run).parts[0] != "logs"}


def judge(result: Result, *patterns: str, code: int | None = 2, root: Path | None = None,
          before: dict[str, bytes] | None = None, run: Path | None = None, prefix: str = "paretohqd: error:") -> None:
    """The contract of a refused input; every broken part of it is listed in one failure message."""
    problems = []
    if result.exc is not None or "Traceback" in result.err:
        problems.append("a traceback reached the user")
    if code is None:
        if not result.code:
            problems.append(f"exit code {result.code}, expected non-zero")
    elif result.code != code:
        problems.append(f"exit code {result.code}, expected {code}")
    lines = result.lines if result.exc is None else result.lines[:-2]
    if result.exc is None:
        if len(lines) != 1:
            bars = sum(bool(re.search(r"\d+%\|", line)) for line in lines)
            problems.append(f"{len(lines)} lines on stderr, expected exactly one"
                            + (f" ({bars} of them progress bars)" if bars else ""))
        elif not lines[0].startswith(prefix):
            problems.append(f"the line does not start with {prefix!r}")
        sentence = lines[-1] if lines else ""
        for pattern in patterns:
            if not re.search(pattern, sentence, re.IGNORECASE):
                problems.append(f"the sentence does not match {pattern!r}")
    if root is not None:
        leftovers = partial_files(root)
        if leftovers:
            problems.append(f"partial files left: {leftovers[:3]}")
    if run is not None:
        problems += dishonest_manifest(run)
    if before is not None and run is not None:
        after = snapshot(run)
        changed = sorted(k for k in before if after.get(k) != before[k])
        if changed:
            problems.append(f"earlier results changed or lost: {changed[:3]}")
    assert not problems, "; ".join(problems) + f"  [{result.describe()}]"


# ---------------------------------------------------------------------------------------------------------------
# Fixtures: fast column-objective configs, one finished score+select directory, one tiny-policy run.

OBJ_B = {"name": "obj_b", "type": "column", "column": "b"}


def config_with(tmp_path: Path, **sections) -> Path:
    """test_cli's fast score/select config (column objectives), each given section merged in or replacing it."""
    path = write_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    for key, value in sections.items():
        old = config.get(key)
        config[key] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(config))
    return path


def rows(n: int = 30) -> list[dict]:
    rng = np.random.default_rng(1)
    return [{"id": f"r{i}", "prompt": f"question {i}", "response": ("word " * (i % 7 + 1)).strip(),
             "a": float(rng.uniform()), "b": float(rng.uniform())} for i in range(n)]


def write_rows(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> Path:
    """A finished score + select directory (column objectives), copied by the cases that run on it."""
    root = tmp_path_factory.mktemp("scored")
    config = write_config(root)
    for command in ("score", "select"):
        result = cli(command, config)
        assert result.code == 0, result.describe()
    return root


def copy_scored(scored: Path, tmp_path: Path, **sections) -> tuple[Path, Path, dict[str, bytes]]:
    """(config, run directory, snapshot of its results) of a private copy of the finished directory."""
    shutil.copy2(scored / "data.jsonl", tmp_path / "data.jsonl")
    shutil.copytree(scored / "run", tmp_path / "run", symlinks=True)
    return config_with(tmp_path, **sections), tmp_path / "run", snapshot(tmp_path / "run")


TRAIN_FAST = dict(preferences__weights=[[0.5, 0.5]], stage2__enabled=False, train__sft__max_steps=2,
                  select__plot=False)


@pytest.fixture(scope="module")
def finished(tiny_policy, tmp_path_factory):
    """Tiny training 1 of 2: ``evaluate`` on a fresh directory, which must first score, select, train and generate
    (plan.py: a stage command runs whatever its units need first)."""
    root = tmp_path_factory.mktemp("finished")
    config = write_run_config(root, tiny_policy, **TRAIN_FAST)
    return root, config, cli("evaluate", config)


def text_config(tmp_path: Path, policy: Path, **overrides) -> Path:
    return write_run_config(tmp_path, policy, **{**TRAIN_FAST, **overrides})


# ---------------------------------------------------------------------------------------------------------------
# Config: sections, YAML text, command-line overrides.

CONFIG_SECTIONS = [
    ("unknown-top-level-key", {"outptu_dir": "x"}, [r"unknown key 'outptu_dir'", "output_dir"]),
    ("unknown-nested-key", {"data": {"sorce": "x.jsonl"}}, [r"unknown key 'data\.sorce'", "source"]),
    ("renamed-key", {"train": {"stage1_steps": 3}}, [r"train\.stage1_steps", r"train\.sft\.max_steps"]),
    ("k-is-text", {"select": {"k": "many"}}, [r"select\.k", "integer"]),
    ("k-is-float", {"select": {"k": 1.5}}, [r"select\.k", "integer"]),
    ("plot-is-not-bool", {"select": {"plot": "maybe"}}, [r"select\.plot", "true or false"]),
    ("objectives-is-a-mapping", {"objectives": {"name": "a", "type": "column"}}, [r"objectives", "list"]),
    ("objectives-are-strings", {"objectives": ["obj_a", "obj_b"]}, [r"objectives\.0|objectives", "mapping"]),
    ("objectives-empty", {"objectives": []}, [r"no objectives"]),
    ("section-is-null", {"select": None}, [r"select"]),
    ("section-is-a-list", {"select": [1, 2]}, [r"select", "mapping"]),
    ("unknown-method", {"method": "grpo"}, [r"method", "grpo", "paretohqd"]),
    ("unknown-executor", {"execution": {"executor": "dask"}}, [r"execution\.executor", "dask", "local"]),
    ("unknown-resource-kind", {"execution": {"resources": {"gpu_things": {"num_cpus": 1}}}},
     [r"resources", "gpu_things"]),
    ("heldout-fraction-1", {"data": {"heldout_fraction": 1.0}}, [r"data\.heldout_fraction", r"\[0, 1\)"]),
    ("max-samples-0", {"data": {"max_samples": 0}}, [r"data\.max_samples", "at least 1"]),
    ("reference-point-length", {"evaluate": {"reference_point": [0, 0, 0]}},
     [r"evaluate\.reference_point", "3 values", "2 objectives"]),
    ("model-device-gpu", {"model": {"device": "gpu"}}, [r"model\.device", "'gpu'"]),
    ("data-source-empty-string", {"data": {"source": ""}}, [r"data\.source"]),
    ("data-source-number", {"data": {"source": 42}}, [r"data\.source", "42"]),
]


@pytest.mark.parametrize("sections, patterns", [c[1:] for c in CONFIG_SECTIONS], ids=[c[0] for c in CONFIG_SECTIONS])
def test_config_sections(tmp_path, sections, patterns):
    judge(cli("score", config_with(tmp_path, **sections)), *patterns, root=tmp_path)
    assert not (tmp_path / "run" / "scores").exists()


CONFIG_TEXT = [
    ("yaml-syntax-error", b"select:\n  k: [1, 2\n", [r"not valid YAML", r"config\.yaml"]),
    ("yaml-tab-indent", b"select:\n\tk: 3\n", [r"not valid YAML", r"config\.yaml"]),
    ("duplicate-yaml-key", b"select:\n  k: 3\n  k: 4\n", [r"duplicate", r"\bk\b"]),
    ("duplicate-section", b"select:\n  k: 3\nselect:\n  k: 4\n", [r"duplicate", "select"]),
    ("top-level-list", b"- select\n- score\n", [r"mapping", r"config\.yaml"]),
    ("top-level-scalar", b"just some words\n", [r"mapping", r"config\.yaml"]),
    ("non-utf8", "select:\n  k: 3 # caf\xe9\n".encode("latin-1"), [r"UTF-8", r"config\.yaml"]),
    ("empty-file", b"", [r"data\.source is not set"]),
]


@pytest.mark.parametrize("text, patterns", [c[1:] for c in CONFIG_TEXT], ids=[c[0] for c in CONFIG_TEXT])
def test_config_text(tmp_path, text, patterns):
    path = tmp_path / "config.yaml"
    path.write_bytes(text)
    judge(cli("score", path), *patterns, root=tmp_path)


def test_config_file_that_is_a_directory(tmp_path):
    folder = tmp_path / "config.yaml"
    folder.mkdir()
    judge(cli("score", folder), r"config\.yaml", r"folder|directory|not a file")


def test_config_file_missing(tmp_path):
    judge(cli("score", tmp_path / "nope.yaml"), r"nope\.yaml", "does not exist")


def test_scientific_notation_learning_rate_is_a_float(tmp_path):
    """Valid: ``learning_rate: 5e-4`` in the YAML (PyYAML alone would read a string) is the float 0.0005."""
    path = config_with(tmp_path)
    raw = yaml.safe_load(path.read_text())
    text = yaml.safe_dump(raw) + "train:\n  sft:\n    learning_rate: 5e-4\n"
    path.write_text(text)
    config = paretohqd.load_config(path)
    value = config.train.sft["learning_rate"]
    assert isinstance(value, float) and value == pytest.approx(0.0005), repr(value)
    overridden = paretohqd.load_config(path, ["--train.sft.learning_rate", "3e-5"]).train.sft["learning_rate"]
    assert isinstance(overridden, float) and overridden == pytest.approx(3e-5), repr(overridden)
    assert cli("score", path).code == 0


OVERRIDES = [
    ("no-value", ["--select.k"], [r"--select\.k", "no value"]),
    ("bad-path", ["--selectt.k", "3"], [r"unknown key 'selectt'"]),
    ("bad-leaf", ["--select.kay", "3"], [r"select\.kay", r"valid keys: k\b"]),
    ("into-a-value", ["--select.k.x", "3"], [r"'select\.k' is a value"]),
    ("list-index-out-of-range", ["--objectives.5.batch_size", "2"], [r"objectives\.5", "not an index"]),
    ("list-index-not-a-number", ["--objectives.first.batch_size", "2"], [r"objectives\.first", "not an index"]),
    ("k-text", ["--select.k", "abc"], [r"select\.k", "integer", "abc"]),
    ("k-fraction", ["--select.k", "1.5"], [r"select\.k", "integer", r"1\.5"]),
    ("k-list", ["--select.k", "[1, 2]"], [r"select\.k", "integer"]),
    ("stray-positional", ["extra"], [r"unexpected argument 'extra'"]),
    ("bare-dashes", ["--", "3"], [r"unexpected argument"]),
    ("equals-empty-key", ["--=3"], [r"--=3"]),
    ("unparseable-yaml-value", ["--preferences.weights", "[[1, 0"], [r"preferences\.weights"]),
    ("very-long-key", ["--" + "x" * 5000, "1"], [r"unknown key 'x{20}"]),
]


@pytest.mark.parametrize("overrides, patterns", [c[1:] for c in OVERRIDES], ids=[c[0] for c in OVERRIDES])
def test_overrides(tmp_path, overrides, patterns):
    judge(cli("score", config_with(tmp_path), *overrides), *patterns, root=tmp_path)
    assert not (tmp_path / "run" / "scores").exists()


def test_missing_config_argument_is_one_sentence():
    """``paretohqd score`` without a config: argparse prints a usage line and an error line today."""
    judge(cli("score"), r"config", prefix="paretohqd")


# ---------------------------------------------------------------------------------------------------------------
# Data: files and rows.


def _missing(tmp):
    return tmp / "absent.jsonl"


def _empty(tmp):
    path = tmp / "empty.jsonl"
    path.write_text("")
    return path


def _blank_lines(tmp):
    path = tmp / "blank.jsonl"
    path.write_text("\n\n  \n")
    return path


def _malformed(tmp):
    path = write_rows(tmp / "bad.jsonl", rows())
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:-7]
    path.write_text("\n".join(lines) + "\n")
    return path


def _array_line(tmp):
    path = write_rows(tmp / "array.jsonl", rows())
    path.write_text(path.read_text() + "[1, 2, 3]\n")
    return path


def _non_utf8(tmp):
    path = write_rows(tmp / "latin.jsonl", rows())
    path.write_bytes(path.read_bytes() + b'{"id": "x", "prompt": "caf\xe9", "response": "r", "a": 1, "b": 1}\n')
    return path


def _txt(tmp):
    path = tmp / "data.txt"
    path.write_text("prompt,response\n")
    return path


def _folder(tmp):
    folder = tmp / "data_folder"
    folder.mkdir()
    write_rows(folder / "part-0.jsonl", rows())
    return folder


def _symlink_loop(tmp):
    first, second = tmp / "loop_a.jsonl", tmp / "loop_b.jsonl"
    first.symlink_to(second)
    second.symlink_to(first)
    return first


def _garbage_parquet(tmp):
    path = tmp / "data.parquet"
    path.write_bytes(b"PAR1 this is not a parquet file at all\n" * 3)
    return path


def _garbage_json(tmp):
    path = tmp / "data.json"
    path.write_text('{"prompt": ["a", "b"], "response": ')
    return path


def _hub_id_offline(tmp):
    return "no-such-user-xyz/no-such-dataset-xyz"


DATA_FILES = [
    ("missing-file", _missing, [r"absent\.jsonl", "does not exist"]),
    ("empty-file", _empty, [r"empty\.jsonl", "no samples"]),
    ("only-blank-lines", _blank_lines, [r"blank\.jsonl", "no samples"]),
    ("malformed-json-line", _malformed, [r"bad\.jsonl", r"line 3\b", "not valid JSON"]),
    ("json-array-line", _array_line, [r"array\.jsonl", r"line 31\b", "list"]),
    ("non-utf8-line", _non_utf8, [r"latin\.jsonl", r"line 31\b", "UTF-8"]),
    ("unsupported-extension", _txt, [r"data\.txt", r"\.jsonl"]),
    ("plain-folder", _folder, [r"data_folder"]),
    ("symlink-loop", _symlink_loop, [r"loop_a\.jsonl", r"symbolic link|symlink|link loop|too many levels"]),
    ("garbage-parquet", _garbage_parquet, [r"data\.parquet", "Parquet"]),
    ("garbage-json", _garbage_json, [r"data\.json", "JSON"]),
    ("hub-id-offline", _hub_id_offline, [r"no-such-user-xyz/no-such-dataset-xyz"]),
]


@pytest.mark.parametrize("make, patterns", [c[1:] for c in DATA_FILES], ids=[c[0] for c in DATA_FILES])
def test_data_files(tmp_path, make, patterns):
    source = make(tmp_path)
    judge(cli("score", config_with(tmp_path, data={"source": str(source)})), *patterns, root=tmp_path)
    assert not (tmp_path / "run" / "scores").exists()


def _set(row: int, column: str, value):
    def mutate(records):
        records[row][column] = value
        return records
    return mutate


def _drop(column: str):
    def mutate(records):
        for record in records:
            record.pop(column)
        return records
    return mutate


def _duplicate_id(records):
    records[5]["id"] = records[2]["id"]
    return records


WHERE = r"row 2\b|'r1'|line 2\b"  # the sample: its row/line in the file, or its id
DATA_ROWS = [
    ("nan-score-column", _set(1, "a", float("nan")), [r"NaN", r"'r1'", "obj_a"]),
    ("missing-prompt-column", _drop("prompt"), [r"no column 'prompt'"]),
    ("missing-response-column", _drop("response"), [r"no column 'response'"]),
    ("missing-id-column", _drop("id"), [r"no column 'id'"]),
    ("response-is-dict", _set(1, "response", {"text": "hi"}), ["response", WHERE]),
    ("response-is-list", _set(1, "response", ["hi", "there"]), ["response", WHERE]),
    ("response-is-bool", _set(1, "response", True), ["response", WHERE]),
    ("response-is-number", _set(1, "response", 3.5), ["response", WHERE]),
    ("response-is-null", _set(1, "response", None), ["response", WHERE]),
    ("prompt-is-list", _set(1, "prompt", ["q"]), ["prompt", WHERE]),
    ("duplicate-ids", _duplicate_id, [r"'r2'", "more than once|duplicate"]),
    ("null-id", _set(1, "id", None), [r"\bid\b", WHERE]),
]


@pytest.mark.parametrize("mutate, patterns", [c[1:] for c in DATA_ROWS], ids=[c[0] for c in DATA_ROWS])
def test_data_rows(tmp_path, mutate, patterns):
    write_rows(tmp_path / "data.jsonl", mutate(rows()))
    judge(cli("score", config_with(tmp_path)), *patterns, root=tmp_path)
    assert not (tmp_path / "run" / "scores" / "scores.parquet").exists()


def _trl_rows(bad_row: dict):
    """TRL's conversational format with a/b score columns, row 2 replaced by ``bad_row``."""
    def make(records):
        converted = [{"id": r["id"], "a": r["a"], "b": r["b"],
                      "messages": [{"role": "user", "content": r["prompt"]},
                                   {"role": "assistant", "content": r["response"]}]} for r in records]
        converted[1] = {**converted[1], **bad_row}
        return converted
    return make


TRL_ROWS = [
    ("trl-ends-with-user", _trl_rows({"messages": [{"role": "user", "content": "q"}]}),
     [r"row 2\b", "does not end with an assistant message", "TRL's conversational format"]),
    ("trl-unknown-role",
     _trl_rows({"messages": [{"role": "bot", "content": "q"}, {"role": "assistant", "content": "a"}]}),
     [r"row 2\b", "role is not one of system, user, assistant"]),
    ("trl-content-not-text", _trl_rows({"messages": [{"role": "user", "content": 7}]}), [r"row 2\b", "not a list of"]),
    ("trl-messages-is-text", _trl_rows({"messages": "hello"}), [r"row 2\b", "not a list of"]),
    ("trl-no-format-columns", lambda records: records, ["none of TRL's dataset formats", "prompt, completion"]),
]


@pytest.mark.parametrize("make, patterns", [c[1:] for c in TRL_ROWS], ids=[c[0] for c in TRL_ROWS])
def test_trl_format_rows(tmp_path, make, patterns):
    write_rows(tmp_path / "data.jsonl", make(rows()))
    judge(cli("score", config_with(tmp_path, data={"adapter": "trl"})), *patterns, root=tmp_path)
    assert not (tmp_path / "run" / "scores").exists()


SOURCE_MAPPINGS = [
    ("mapping-unknown-key", {"path": "org/name", "subset": "x"}, ["unknown key 'subset'", "path, name, data_dir"]),
    ("mapping-without-path", {"data_dir": "harmless-base"}, ["has no 'path'"]),
    ("mapping-local-with-data-dir", {"path": "data.jsonl", "data_dir": "x"}, ["data.jsonl", "only a Hub dataset"]),
    ("mapping-hub-offline", {"path": "no-such-user-xyz/no-such-dataset-xyz", "data_dir": "d", "revision": "r1"},
     ["no-such-user-xyz/no-such-dataset-xyz \\(data_dir d, revision r1\\)"]),
    ("source-is-a-number", 5, ["source must be a path/Hub id, a mapping"]),
]


@pytest.mark.parametrize("source, patterns", [c[1:] for c in SOURCE_MAPPINGS], ids=[c[0] for c in SOURCE_MAPPINGS])
def test_source_mappings(tmp_path, monkeypatch, source, patterns):
    monkeypatch.chdir(tmp_path)
    write_rows(tmp_path / "data.jsonl", rows())
    judge(cli("score", config_with(tmp_path, data={"source": source})), *patterns, root=tmp_path)
    assert not (tmp_path / "run" / "scores").exists()


EMPTY_TEXT = [
    ("empty-prompt", _set(1, "prompt", ""), "prompt"),
    ("whitespace-prompt", _set(1, "prompt", "\n\n  "), "prompt"),
    ("empty-response", _set(1, "response", ""), "response"),
    ("whitespace-response", _set(1, "response", " \n\t "), "response"),
]


@pytest.mark.parametrize("mutate, column", [c[1:] for c in EMPTY_TEXT], ids=[c[0] for c in EMPTY_TEXT])
def test_empty_text_is_refused_when_asked(tmp_path, mutate, column):
    """``data.empty_text: error``: one sentence naming the sample and its empty column."""
    write_rows(tmp_path / "data.jsonl", mutate(rows()))
    judge(cli("score", config_with(tmp_path), "--data.empty_text", "error"), r"'r1'", column, "empty",
          root=tmp_path)
    assert not (tmp_path / "run" / "scores").exists()


@pytest.mark.parametrize("mutate, column", [c[1:] for c in EMPTY_TEXT], ids=[c[0] for c in EMPTY_TEXT])
def test_empty_text_is_left_out_by_default_and_said(tmp_path, mutate, column):
    """The default (``data.empty_text: drop``): the sample is left out of the scores, and the run says which."""
    write_rows(tmp_path / "data.jsonl", mutate(rows()))
    result = cli("score", config_with(tmp_path))
    assert result.code == 0 and result.exc is None, result.describe()
    assert "'r1'" in result.out + result.err, result.out
    ids = pd.read_parquet(tmp_path / "run" / "scores" / "scores.parquet")["id"].tolist()
    assert "r1" not in ids and len(ids) == 29


def test_every_response_empty(tmp_path):
    records = rows()
    for record in records:
        record["response"] = "   "
    write_rows(tmp_path / "data.jsonl", records)
    judge(cli("score", config_with(tmp_path)), r"data\.jsonl", r"no samples|empty", root=tmp_path)
    assert not (tmp_path / "run" / "scores").exists()


# ---------------------------------------------------------------------------------------------------------------
# Objectives.


def _callable(name: str, function: str) -> dict:
    return {"name": name, "type": "callable", "callable": f"tests.helpers_objectives:{function}"}


OBJECTIVES = [
    ("unknown-builtin", [{"name": "fun", "builtin": "humour"}, OBJ_B], [r"unknown objective 'humour'"]),
    ("missing-column", [{"name": "obj_a", "type": "column", "column": "nope"}, OBJ_B],
     [r"obj_a", r"'nope'"]),
    ("column-type-without-column", [{"name": "obj_a", "type": "column"}, OBJ_B], [r"obj_a", "column"]),
    ("non-numeric-column", [{"name": "words", "type": "column", "column": "prompt"}, OBJ_B],
     [r"words", "not a number"]),
    ("callable-raises", [_callable("boom", "raises_error"), OBJ_B], [r"objective 'boom'", "reward server unreachable"]),
    ("callable-module-missing", [{"name": "gone", "type": "callable", "callable": "no_such_module_xyz:f"}, OBJ_B],
     [r"'gone'", "no_such_module_xyz"]),
    ("callable-function-missing", [_callable("gone", "no_such_function"), OBJ_B], [r"'gone'", "no_such_function"]),
    ("callable-path-malformed", [{"name": "gone", "type": "callable", "callable": "justaname"}, OBJ_B],
     [r"'gone'", "justaname"]),
    ("callable-too-few", [_callable("few", "too_few_scores"), OBJ_B], [r"'few'", "returned 1 scores"]),
    ("callable-too-many", [_callable("many", "returns_too_many"), OBJ_B], [r"'many'", r"returned \d+ scores"]),
    ("callable-nan", [_callable("nanny", "returns_nan"), OBJ_B], [r"'nanny'", "NaN", r"'r3'"]),
    ("callable-inf", [_callable("infy", "returns_inf"), OBJ_B], [r"'infy'", "infinite", r"'r2'"]),
    ("callable-strings", [_callable("texty", "returns_strings"), OBJ_B], [r"'texty'", "not numbers"]),
    ("callable-none", [_callable("nothing", "returns_none"), OBJ_B], [r"'nothing'", r"None|no scores"]),
    ("callable-scalar", [_callable("scalar", "returns_scalar"), OBJ_B], [r"'scalar'"]),
    ("builtin-bad-kwargs", [{"name": "short", "builtin": "conciseness", "kwargs": {"bogus": 1}}, OBJ_B],
     [r"'short'", "bogus"]),
    ("hf-model-missing", [{"name": "rm", "type": "hf", "model": "/no/such/reward_model"}, OBJ_B],
     [r"'rm'|/no/such/reward_model"]),
    ("duplicate-names", [{"name": "obj_b", "type": "column", "column": "a"}, OBJ_B], [r"'obj_b'", "twice"]),
    ("empty-name", [{"name": "", "type": "column", "column": "a"}, OBJ_B], [r"name"]),
    ("reserved-name", [{"name": "prompt", "type": "column", "column": "a"}, OBJ_B], [r"'prompt'"]),
]


@pytest.mark.parametrize("objectives, patterns", [c[1:] for c in OBJECTIVES], ids=[c[0] for c in OBJECTIVES])
def test_objectives(tmp_path, objectives, patterns):
    judge(cli("score", config_with(tmp_path, objectives=objectives)), *patterns, root=tmp_path)
    assert not (tmp_path / "run" / "scores" / "scores.parquet").exists()


UNSAFE_NAMES = [
    ("dot-dot", "../../../escaped"),
    ("absolute", "/tmp/paretohqd-hostile-abs"),
    ("slash", "a/b"),
    ("space", "my score"),
    ("star", "star*"),
    ("colon", "c:d"),
    ("newline", "two\nlines"),
    ("dot", "."),
    ("very-long", "n" * 300),
]


@pytest.mark.parametrize("name", [c[1] for c in UNSAFE_NAMES], ids=[c[0] for c in UNSAFE_NAMES])
def test_objective_names_unsafe_for_a_file_name(tmp_path, name):
    config = config_with(tmp_path, objectives=[{"name": name, "type": "column", "column": "a"}, OBJ_B])
    neighbours = set(os.listdir(tmp_path.parent))
    result = cli("score", config)
    judge(result, r"objective", r"name", root=tmp_path)
    outside = (set(os.listdir(tmp_path)) - {"config.yaml", "data.jsonl", "run"}) \
        | (set(os.listdir(tmp_path.parent)) - neighbours)
    assert not outside and not Path("/tmp/paretohqd-hostile-abs").exists(), \
        f"written outside the run directory: {sorted(outside)}"


# ---------------------------------------------------------------------------------------------------------------
# Preferences and selection.

PREFERENCES = [
    ("wrong-length", {"grid": "explicit", "weights": [[0.2, 0.3, 0.5]]}, [r"3 weights", "2 objectives"]),
    ("negative", {"grid": "explicit", "weights": [[1.5, -0.5]]}, [r"negative", r"-0\.5"]),
    ("all-zero", {"grid": "explicit", "weights": [[0.5, 0.5], [0, 0]]}, [r"all zero"]),
    ("nan", {"grid": "explicit", "weights": [[float("nan"), 1.0]]}, [r"nan|finite"]),
    ("inf", {"grid": "explicit", "weights": [[float("inf"), 1.0]]}, [r"inf|finite"]),
    ("explicit-without-weights", {"grid": "explicit"}, [r"explicit", "weights"]),
    ("explicit-empty-weights", {"grid": "explicit", "weights": []}, [r"explicit", "weights"]),
    ("text-weights", {"grid": "explicit", "weights": [["a", "b"]]}, [r"preference", "number"]),
    ("n-points-1", {"n_points": 1}, [r"preferences\.n_points", "from 2 to 10,000"]),
    ("n-points-0", {"n_points": 0}, [r"preferences\.n_points", "from 2 to 10,000"]),
    ("n-partitions-0", {"grid": "das-dennis", "n_partitions": 0}, [r"preferences\.n_partitions"]),
    ("weights-with-linear-grid", {"grid": "linear", "weights": [[1, 0]]}, [r"grid: explicit"]),
    ("unknown-grid", {"grid": "hexagonal"}, [r"preferences\.grid", "hexagonal"]),
]


@pytest.mark.parametrize("section, patterns", [c[1:] for c in PREFERENCES], ids=[c[0] for c in PREFERENCES])
def test_preferences(tmp_path, section, patterns):
    judge(cli("score", config_with(tmp_path, preferences=section)), *patterns, root=tmp_path)
    assert not (tmp_path / "run" / "scores").exists()


SELECT = [
    ("k-larger-than-pool", ["--select.k", "5000"], [r"k=5000|select\.k", "larger than", r"\b300\b"]),
    ("k-0", ["--select.k", "0"], [r"select\.k", "at least 1"]),
    ("k-negative", ["--select.k", "-3"], [r"select\.k", "at least 1"]),
    ("min-pool-0", ["--select.min_pool", "0"], [r"select\.min_pool", "at least 1"]),
    ("unknown-metric", ["--select.metric", "manhattan"], [r"select\.metric", "manhattan", "perpendicular"]),
    ("unknown-normalisation", ["--select.normalisation", "zscore"], [r"select\.normalisation", "zscore"]),
    ("reversed-quantiles", ["--select.robust_quantiles", "[0.9, 0.1]"], [r"select\.robust_quantiles"]),
]


@pytest.mark.parametrize("overrides, patterns", [c[1:] for c in SELECT], ids=[c[0] for c in SELECT])
def test_selection_on_a_finished_directory(scored, tmp_path, overrides, patterns):
    config, run, before = copy_scored(scored, tmp_path)
    judge(cli("select", config, *overrides), *patterns, root=tmp_path, run=run, before=before)


def test_data_file_gone_from_a_finished_directory(scored, tmp_path):
    config, run, before = copy_scored(scored, tmp_path)
    (tmp_path / "data.jsonl").unlink()
    judge(cli("select", config), r"data\.jsonl", "does not exist", root=tmp_path, run=run, before=before)


def test_unicode_text_and_folder_names_are_accepted(tmp_path):
    """Not hostile to a correct program: emoji, CJK, right-to-left, combining marks and a NUL character in the
    text, and a run folder named with non-ASCII letters, all kept exactly."""
    records = rows()
    texts = ["🙂 émoji", "日本語の応答", "مرحبا بالعالم", "e\u0301\u0301 combining", "nul \x00 inside", "line\nbreak"]
    for record, text in zip(records, texts):
        record["prompt"], record["response"] = f"¿{text}?", text
    write_rows(tmp_path / "data.jsonl", records)
    config = config_with(tmp_path, output_dir=str(tmp_path / "rün-✓"))
    result = cli("score", config)
    assert result.code == 0, result.describe()
    scores = pd.read_parquet(tmp_path / "rün-✓" / "scores" / "scores.parquet")
    assert scores["response"].tolist()[:len(texts)] == texts


def test_one_objective_selects_the_k_highest_scores(tmp_path):
    """With M = 1 every preference is the one objective: the k selected must be the k samples scoring highest."""
    config = config_with(tmp_path, objectives=[{"name": "obj_a", "type": "column", "column": "a"}],
                         select={"k": 10, "min_pool": 40, "plot": False})
    result = cli("select", config)
    assert result.code == 0, result.describe()
    frame = pd.read_json(tmp_path / "data.jsonl", lines=True)
    best = set(frame.sort_values("a", ascending=False, kind="stable")["id"].head(10))
    files = sorted((tmp_path / "run" / "selection").glob("pref_*.json"))
    assert files
    for path in files:
        chosen = json.loads(path.read_text())
        assert set(chosen["sample_ids"]) == best, (path.name, sorted(chosen["sample_ids"]), sorted(best),
                                                   chosen.get("distances", [])[:3])


# ---------------------------------------------------------------------------------------------------------------
# Models, and training settings passed through to trl / peft: all must fail before any scoring.


def _no_model(tmp, policy):
    return str(tmp / "no_such_model")


def _empty_folder(tmp, policy):
    (tmp / "empty_model").mkdir()
    return str(tmp / "empty_model")


def _config_only(tmp, policy):
    folder = tmp / "config_only"
    folder.mkdir()
    shutil.copy2(policy / "config.json", folder / "config.json")
    for name in os.listdir(policy):
        if "token" in name:
            shutil.copy2(policy / name, folder / name)
    return str(folder)


def _hub_id(tmp, policy):
    return "no-such-org-xyz/no-such-model-xyz"


class _RunsCode:
    """What a malicious pickle does when loaded without weights_only."""

    def __reduce__(self):
        return (os.system, ("touch pickle-ran",))


def _pickled_weights(tmp, policy):
    import torch

    folder = Path(_config_only(tmp, policy))
    torch.save({"weight": _RunsCode()}, folder / "pytorch_model.bin")
    return str(folder)


def _adapter_not_model(tmp, policy):
    folder = tmp / "an_adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    return str(folder)


def _model_is_a_file(tmp, policy):
    path = tmp / "model.safetensors"
    shutil.copy2(policy / "model.safetensors", path)
    return str(path)


MODELS = [
    ("path-missing", _no_model, [r"no_such_model"]),
    ("pickled-weights-refused", _pickled_weights, [r"pytorch_model\.bin", "pickle", "safetensors"]),
    ("an-adapter-not-a-model", _adapter_not_model, [r"an_adapter", "LoRA adapter"]),
    ("model-path-is-a-file", _model_is_a_file, [r"model\.safetensors", "is a file"]),
    ("empty-folder", _empty_folder, [r"empty_model"]),
    ("config-without-weights", _config_only, [r"config_only", r"weights|safetensors"]),
    ("hub-id-offline", _hub_id, [r"no-such-org-xyz/no-such-model-xyz"]),
]


@pytest.mark.parametrize("make, patterns", [c[1:] for c in MODELS], ids=[c[0] for c in MODELS])
def test_models_fail_before_scoring(tiny_policy, tmp_path, make, patterns):
    config = text_config(tmp_path, tiny_policy, model__name_or_path=make(tmp_path, tiny_policy))
    judge(cli("train", config), *patterns, root=tmp_path, run=tmp_path / "run")
    assert not (tmp_path / "run" / "scores").exists(), "the run scored before finding the model unusable"
    assert not list(tmp_path.rglob("pickle-ran")) and not Path("pickle-ran").exists(), "a pickle ran code"


def test_cuda_device_without_cuda_fails_before_scoring(tiny_policy, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: model.device cuda is valid here")
    config = text_config(tmp_path, tiny_policy, model__device="cuda")
    judge(cli("train", config), r"model\.device", "cuda", root=tmp_path, run=tmp_path / "run")
    assert not (tmp_path / "run" / "scores").exists()


TRAINING = [
    ("seed-too-large", ["--seed", "8589934592"], [r"\bseed\b", "8589934592"]),
    ("seed-negative", ["--seed", "-1"], [r"\bseed\b", "-1"]),
    ("unknown-scheduler", ["--train.sft.lr_scheduler_type", "sometimes"], [r"lr_scheduler_type|sometimes"]),
    ("negative-warmup", ["--train.sft.warmup_steps", "-5"], [r"warmup_steps"]),
    ("no-such-target-module", ["--train.lora.target_modules", "[no_such_proj]"], [r"target_modules|no_such_proj"]),
    ("lora-rank-negative", ["--train.lora.r", "-4"], [r"train\.lora|\br\b"]),
    ("unknown-sft-field", ["--train.sft.learnin_rate", "0.1"], [r"train\.sft\.learnin_rate", "learning_rate"]),
    ("run-owned-field", ["--train.sft.output_dir", "elsewhere"], [r"train\.sft\.output_dir", "set by the run"]),
    ("run-owned-seed", ["--train.sft.seed", "3"], [r"train\.sft\.seed", "set by the run"]),
    ("trainer-pushes-to-hub", ["--train.sft.push_to_hub", "true"],
     [r"train\.sft\.push_to_hub", r"paretohqd push RUN --repo-prefix"]),
    ("trainer-hub-model-id", ["--train.sft.hub_model_id", "me/model"], [r"train\.sft\.hub_model_id", "paretohqd push"]),
    ("report-to-unknown", ["--report_to", "wandbb"], [r"report_to", "wandbb", "not an integration"]),
    ("batch-size-text", ["--train.sft.per_device_train_batch_size", "eight"], [r"per_device_train_batch_size"]),
    ("unknown-stage2-field", ["--stage2.enabled", "true", "--stage2.sft.bogus_field", "1"],
     [r"stage2\.sft\.bogus_field"]),
]


@pytest.mark.parametrize("overrides, patterns", [c[1:] for c in TRAINING], ids=[c[0] for c in TRAINING])
def test_training_settings_fail_before_scoring(tiny_policy, tmp_path, overrides, patterns):
    config = text_config(tmp_path, tiny_policy)
    judge(cli("train", config, *overrides), *patterns, root=tmp_path, run=tmp_path / "run")
    assert not (tmp_path / "run" / "scores").exists(), "the run scored before refusing its training settings"
    assert not list((tmp_path / "run").glob("models/**/.complete"))


def test_diverging_training_fails_naming_preference_and_step(tiny_policy, tmp_path):
    """Tiny training 2 of 2: a learning rate so large the weights become non-finite. The run must stop with one
    sentence naming the preference and the step, and leave no model marked complete."""
    config = text_config(tmp_path, tiny_policy, train__sft__learning_rate=1e30, train__sft__max_steps=3)
    result = cli("train", config)
    run = tmp_path / "run"
    judge(result, r"pref_00|0\.5", r"step", r"nan|inf|finite|diverg", code=None, root=tmp_path, run=run)
    assert not list(run.glob("models/**/.complete")), "a diverged model is marked complete"


# ---------------------------------------------------------------------------------------------------------------
# Stage commands out of order (plan.py: a stage command runs what its units need first).


def test_evaluate_on_a_fresh_directory_runs_every_earlier_stage(finished):
    root, _, result = finished
    assert result.code == 0 and result.exc is None, result.describe()
    run = root / "run"
    for path in ("scores/scores.parquet", "selection/pref_00.json", "models/pref_00/stage1/.complete",
                 "generations/pref_00.jsonl", "generations/base.jsonl", "eval/metrics.json"):
        assert (run / path).exists(), path
    assert not partial_files(root) and not dishonest_manifest(run)


@pytest.mark.parametrize("command", ["train", "generate"])
def test_train_and_generate_plan_their_earlier_stages(tiny_policy, tmp_path, command):
    config = paretohqd.load_config(text_config(tmp_path, tiny_policy))
    stages = paretohqd.plan(config, command).stages[command]
    assert {"score", "select", "train_stage1"} <= set(stages), stages
    assert not (tmp_path / "run").exists()  # planning writes nothing


@pytest.mark.parametrize("command", ["train", "generate", "evaluate"])
def test_text_stages_with_column_objectives_say_what_is_wrong(tmp_path, command):
    judge(cli(command, config_with(tmp_path)), r"obj_a", "stored column", root=tmp_path)
    assert not (tmp_path / "run" / "scores").exists()


def test_stage_the_method_does_not_have(tmp_path):
    judge(cli("select", config_with(tmp_path, method="sft")), r"'select'", r"'sft'")


def test_stage_commands_on_a_finished_run_do_nothing(finished):
    root, config, _ = finished
    before = snapshot(root / "run")
    for command in ("train", "generate", "evaluate"):
        result = cli(command, config)
        assert result.code == 0 and "done already" in result.out, result.describe()
    assert snapshot(root / "run") == before


# ---------------------------------------------------------------------------------------------------------------
# Run directories and file systems.


def test_output_dir_empty(tmp_path):
    judge(cli("score", config_with(tmp_path), "--output_dir", ""), r"output_dir", "empty", root=tmp_path)


def test_output_dir_is_a_file(tmp_path):
    target = tmp_path / "occupied"
    target.write_text("precious\n")
    judge(cli("score", config_with(tmp_path), "--output_dir", target), r"occupied", code=None, root=tmp_path)
    assert target.read_text() == "precious\n"


def test_output_dir_under_a_file(tmp_path):
    target = tmp_path / "occupied"
    target.write_text("precious\n")
    judge(cli("score", config_with(tmp_path), "--output_dir", target / "run"), r"occupied", code=None,
          root=tmp_path)
    assert target.read_text() == "precious\n"


def test_output_dir_name_too_long(tmp_path):
    judge(cli("score", config_with(tmp_path), "--output_dir", tmp_path / ("x" * 300) / "run"),
          r"x{20}", r"too long", code=None, root=tmp_path)


def test_score_cache_dir_is_a_file(tmp_path):
    cache = tmp_path / "cache_file"
    cache.write_text("not a folder\n")
    judge(cli("score", config_with(tmp_path), "--score.cache_dir", cache), r"cache_file", code=None, root=tmp_path)
    assert cache.read_text() == "not a folder\n"


def test_run_directory_is_a_symlink_loop(tmp_path):
    loop = tmp_path / "loop_run"
    loop.symlink_to(loop)
    judge(cli("score", config_with(tmp_path), "--output_dir", loop), r"loop_run",
          r"symbolic link|symlink|link loop|too many levels", code=None, root=tmp_path)


def _drop_dac_capabilities():
    """In the child before exec: without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH root obeys permission bits."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_without_write_permission(*argv) -> Result:
    if os.geteuid() != 0:
        return subprocess_cli(*argv)
    try:
        return subprocess_cli(*argv, preexec_fn=_drop_dac_capabilities)
    except subprocess.SubprocessError as exc:
        pytest.skip(f"cannot drop CAP_DAC_OVERRIDE for a child process here: {exc}")


def _readonly(path: Path):
    for item in [path, *path.rglob("*")]:
        mode = item.stat().st_mode
        item.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _writable(path: Path):
    for item in [path, *path.rglob("*")]:
        item.chmod(item.stat().st_mode | stat.S_IWUSR)


def test_output_dir_inside_a_read_only_folder(tmp_path):
    """Subprocess without the power to ignore permissions (an unprivileged user, or root less CAP_DAC_OVERRIDE).
    A permission failure may exit 1 or 2; it must still be one sentence naming the folder."""
    locked = tmp_path / "locked"
    locked.mkdir()
    config = config_with(tmp_path)
    _readonly(locked)
    try:
        result = run_without_write_permission("score", config, "--output_dir", locked / "run")
    finally:
        _writable(locked)
    judge(result, r"locked", r"permission denied|read-only|not writable", code=None, root=tmp_path)
    assert not (locked / "run").exists()


def test_read_only_finished_run_keeps_its_results(scored, tmp_path):
    config, run, before = copy_scored(scored, tmp_path)
    _readonly(run)
    try:
        result = run_without_write_permission("select", config, "--select.k", "5")
    finally:
        _writable(run)
    judge(result, re.escape(str(run)), r"permission denied|read-only|not writable", code=None, root=tmp_path,
          run=run, before=before)


def _no_space_writer(real_atomic_path, victim: str):
    """A ``paretohqd.io.write_bytes`` / ``write_parquet`` whose write of ``victim`` fills the disk half way."""

    def write(path, payload, **options) -> None:
        with real_atomic_path(path) as tmp:
            if Path(path).name == victim:
                with open(tmp, "wb") as handle:
                    handle.write(b"half a file")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
            if isinstance(payload, bytes):
                tmp.write_bytes(payload)
            else:
                payload.to_parquet(tmp, index=False, **options)
    return write


def test_disk_full_in_the_middle_of_selection(scored, tmp_path, monkeypatch):
    import paretohqd.io as pio

    config, run, before = copy_scored(scored, tmp_path)
    scores_before = {k: v for k, v in before.items() if k.startswith(("scores/", "inputs/"))}
    monkeypatch.setattr(pio, "write_bytes", _no_space_writer(pio.atomic_path, "pref_03.json"))
    result = cli("select", config, "--select.k", "7")
    monkeypatch.undo()
    judge(result, r"pref_03\.json", r"no space left", code=None, root=tmp_path, run=run)
    after = snapshot(run)
    assert {k: after.get(k) for k in scores_before} == scores_before, "the scores were touched"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["units"]["select/pref_03"]["status"] != "done"
    # The disk is freed: the rerun completes.
    rerun = cli("select", config, "--select.k", "7")
    assert rerun.code == 0, rerun.describe()
    assert len(json.loads((run / "selection" / "pref_03.json").read_text())["sample_ids"]) == 7
    assert not partial_files(tmp_path) and not dishonest_manifest(run)


def test_disk_full_while_merging_scores(tmp_path, monkeypatch):
    import paretohqd.io as pio

    config = config_with(tmp_path)
    real = _no_space_writer(pio.atomic_path, "scores.parquet")
    monkeypatch.setattr(pio, "write_parquet", real)
    result = cli("score", config)
    monkeypatch.undo()
    run = tmp_path / "run"
    judge(result, r"scores\.parquet", r"no space left", code=None, root=tmp_path, run=run)
    assert not (run / "scores" / "scores.parquet").exists()
    shards = {p: p.stat().st_mtime_ns for p in run.rglob("*.npy")}
    assert shards, "the shards scored before the disk filled are lost"
    rerun = cli("score", config)
    assert rerun.code == 0, rerun.describe()
    assert {p: p.stat().st_mtime_ns for p in shards} == shards, "finished shards were scored again"
    assert (run / "scores" / "scores.parquet").exists() and not partial_files(tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# compare and rewards fit.


def test_compare_output_is_a_file(finished, tmp_path):
    root, _, result = finished
    assert result.code == 0, result.describe()
    target = tmp_path / "compare_here"
    target.write_text("precious\n")
    judge(cli("compare", root / "run", "--output", target), r"compare_here", code=None, root=tmp_path)
    assert target.read_text() == "precious\n"


def test_compare_of_a_run_that_did_not_finish(scored, tmp_path):
    _config, run, before = copy_scored(scored, tmp_path)
    judge(cli("compare", run, "--output", tmp_path / "cmp"), re.escape(str(run)), r"metrics\.json|not finished|finish",
          root=tmp_path, run=run, before=before)
    assert not (tmp_path / "cmp").exists()


def test_compare_of_a_missing_folder(tmp_path):
    judge(cli("compare", tmp_path / "ghost", "--output", tmp_path / "cmp"), r"ghost")
    assert not (tmp_path / "cmp").exists()


@pytest.mark.parametrize("options, patterns", [
    (["--bootstrap", "0"], [r"--bootstrap", "from 1 to 100,000"]),
    (["--reference_point", "0", "0", "0"], [r"reference point", "3 values"]),
    (["--labels", "a", "b"], [r"--labels", "2 labels"]),
], ids=["bootstrap-0", "reference-point-length", "labels-count"])
def test_compare_options(finished, tmp_path, options, patterns):
    root, _, result = finished
    assert result.code == 0, result.describe()
    judge(cli("compare", root / "run", "--output", tmp_path / "cmp", *options), *patterns, root=tmp_path)
    assert not (tmp_path / "cmp").exists()


def _pairs_file(tmp: Path, records: list[dict] | None, name: str = "pairs.jsonl") -> Path:
    path = tmp / name
    if records is not None:
        write_rows(path, records)
    return path


REWARDS_FIT = [
    ("missing-data", lambda t: _pairs_file(t, None), "head.npz", [r"pairs\.jsonl", "does not exist"]),
    ("empty-data", lambda t: _pairs_file(t, []), "head.npz", [r"pairs\.jsonl", "no samples|no pairs|empty"]),
    ("no-chosen-column", lambda t: _pairs_file(t, [{"prompt": "p", "response": "r"}]), "head.npz",
     [r"pairs\.jsonl", r"'chosen'"]),
    ("no-assistant-turn", lambda t: _pairs_file(t, [{"chosen": "\n\nHuman: hi", "rejected": "\n\nHuman: yo"}]),
     "head.npz", [r"pairs\.jsonl", r"row 1", "Assistant"]),
    ("output-is-a-folder", lambda t: _pairs_file(t, [{"chosen": "\n\nHuman: a\n\nAssistant: b",
                                                      "rejected": "\n\nHuman: a\n\nAssistant: c"}]),
     ".", [r"folder"]),
]


@pytest.mark.parametrize("make, output, patterns", [c[1:] for c in REWARDS_FIT], ids=[c[0] for c in REWARDS_FIT])
def test_rewards_fit_bad_files(tmp_path, make, output, patterns):
    data = make(tmp_path)
    judge(cli("rewards", "fit", "--data", data, "--output", tmp_path / output), *patterns, root=tmp_path)
    assert not (tmp_path / "head.npz").exists()


def test_rewards_fit_bad_heldout_fraction(tmp_path):
    judge(cli("rewards", "fit", "--data", tmp_path / "x.jsonl", "--output", tmp_path / "h.npz",
              "--heldout-fraction", "1.5"), r"--heldout-fraction", r"1\.5")


# ---------------------------------------------------------------------------------------------------------------
# Launch options.


def test_accelerate_config_unknown_name(tmp_path):
    judge(cli("run", config_with(tmp_path), "--accelerate_config", "zero9"), r"zero9", r"ddp|zero3")
    assert not (tmp_path / "run").exists()


def test_accelerate_config_file_that_is_not_yaml(tmp_path):
    bad = tmp_path / "launch.yaml"
    bad.write_text("compute_environment: [unclosed\n")
    judge(cli("run", config_with(tmp_path), "--accelerate_config", bad), r"launch\.yaml")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------------------------
# The real process: exit codes, no traceback, signals.


@pytest.mark.parametrize("case", ["config-type-error", "output-dir-is-a-file"])
def test_real_process_exit_code_and_no_traceback(tmp_path, case):
    if case == "config-type-error":
        config = config_with(tmp_path, select={"k": "many"})
        judge(subprocess_cli("score", config), r"select\.k", "integer", root=tmp_path)
    else:
        (tmp_path / "occupied").write_text("precious\n")
        config = config_with(tmp_path, output_dir=str(tmp_path / "occupied"))
        judge(subprocess_cli("score", config), r"occupied", code=None, root=tmp_path)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_scoring_then_resume(tmp_path, signum):
    config = config_with(tmp_path, objectives=[{"name": "obj_a", "type": "column", "column": "a"},
                                               {**_callable("slow", "slow_length"), "batch_size": 20}],
                         score={"shard_size": 20, "consistency_check": 0})
    env = {**os.environ, "PARETOHQD_PROGRESS": "0", "PARETOHQD_TEST_SLOW": "0.25"}
    # SIGINT as a terminal delivers it: a shell that started this suite in the background (`make test &`) made
    # SIGINT ignored for every process it starts, and Python then keeps it ignored instead of raising Ctrl-C.
    process = subprocess.Popen([sys.executable, "-m", "paretohqd.cli", "score", str(config)], cwd=str(REPO), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
    shards = tmp_path / "run" / "scores" / "cache" / "slow"
    deadline = time.time() + 60
    while process.poll() is None and time.time() < deadline and not list(shards.glob("*.npy")):
        time.sleep(0.02)
    assert process.poll() is None, "scoring ended before it could be interrupted"
    time.sleep(0.1)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    result = Result(process.returncode, out, err)
    judge(result, r"interrupt|terminat|signal", code=None, root=tmp_path, run=tmp_path / "run",
          prefix="paretohqd:")
    assert not (tmp_path / "run" / "scores" / "scores.parquet").exists()
    kept = {p: p.stat().st_mtime_ns for p in shards.glob("*.npy")}
    assert kept
    rerun = cli("score", config)
    assert rerun.code == 0, rerun.describe()
    assert {p: p.stat().st_mtime_ns for p in kept} == kept, "shards finished before the signal were rescored"
    assert len(pd.read_parquet(tmp_path / "run" / "scores" / "scores.parquet")) == 300


def test_a_tampered_score_shard_is_refused_not_unpickled(scored, tmp_path):
    """A shard in the cache replaced by a pickled object array: one sentence naming it, never a load with pickle."""
    import numpy as np

    config, run, _ = copy_scored(scored, tmp_path)
    shard = sorted((run / "scores" / "cache").rglob("*.npy"))[0]
    np.save(shard, np.array([{"not": "a score"}] * 3, dtype=object), allow_pickle=True)
    (run / "scores" / "scores.parquet").unlink()  # the merge runs again and reads every shard
    judge(cli("score", config), re.escape(shard.name), "not a plain array", "delete it", root=tmp_path, run=run)
