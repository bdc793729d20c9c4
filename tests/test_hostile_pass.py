"""The hostile pass (HOSTILE_PASS.md): the cases that are not clean today, in the catalogue's style.

Each table is one class of HOSTILE_PASS.md (its letter in the table's comment); a row is one entry point of it.
The whole module is skipped until the classes are fixed: remove the skip (or a table's rows) as each class is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO
from .test_hostile import Result, cli, config_with, copy_scored, finished, judge, rows, scored, snapshot, write_rows  # noqa: F401


def finished_copy(finished, tmp_path: Path) -> Path:  # noqa: F811
    """A private copy of the tiny finished (evaluated) run."""
    root, _, result = finished
    assert result.code == 0, result.describe()
    shutil.copytree(root / "run", tmp_path / "run", symlinks=True)
    return tmp_path / "run"


def run_cli(*argv, cwd: Path, env: dict | None = None, timeout: int = 120) -> Result:
    """The real process in ``cwd`` (``~``, environment variables, a possible hang)."""
    full = {**os.environ, "PARETOHQD_PROGRESS": "0", "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", **(env or {})}
    done = subprocess.run([sys.executable, "-m", "paretohqd.cli", *map(str, argv)], capture_output=True, text=True,
                          cwd=str(cwd), env=full, timeout=timeout)
    return Result(done.returncode, done.stdout, done.stderr)


PAIRS = [{"chosen": f"\n\nHuman: q{i}\n\nAssistant: good {i}", "rejected": f"\n\nHuman: q{i}\n\nAssistant: bad"}
         for i in range(6)]

# ---------------------------------------------------------------------------------------------------------------
# A. A run directory whose objectives read stored columns (score + select only): status must answer; export and
# serving must say the run has no trained models, not blame the objectives.


def test_status_of_a_score_select_run(scored, tmp_path):  # noqa: F811
    _config, run, before = copy_scored(scored, tmp_path)
    result = cli("status", run)
    assert result.code == 0 and result.exc is None, result.describe()
    assert "select/pref_00" in result.out and "done" in result.out, result.out
    assert snapshot(run) == before


@pytest.mark.parametrize("argv", [
    ["export", "{run}", "--weights", "1,0", "--output", "{tmp}/out"],
    ["generate", "{run}", "--weights", "1,0", "--prompt", "hi"],
], ids=["export", "generate-serving"])
def test_untrained_run_directory(scored, tmp_path, argv):  # noqa: F811
    _config, run, before = copy_scored(scored, tmp_path)
    argv = [a.format(run=run, tmp=tmp_path) for a in argv]
    judge(cli(*argv), r"not trained|no trained model|train it first", root=tmp_path, run=run, before=before)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------------------------
# B (device), H (empty paths), O (empty --prompt), N1 (names evaluate.prompt_column): serving a finished run.

SERVING = [
    ("device-gpu", ["--prompt", "hi", "--device", "gpu"], [r"device", r"'gpu'"]),
    ("device-garbage", ["--prompt", "hi", "--device", "toaster"], [r"device", r"'toaster'"]),
    ("prompt-empty", ["--prompt", ""], [r"--prompt", r"empty"]),
    ("output-empty", ["--prompt", "hi", "--output", ""], [r"--output", r"empty"]),
    ("prompts-empty-path", ["--prompts", ""], [r"--prompts", r"empty"]),
]


@pytest.mark.parametrize("options, patterns", [c[1:] for c in SERVING], ids=[c[0] for c in SERVING])
def test_serving(finished, tmp_path, monkeypatch, options, patterns):  # noqa: F811
    run = finished_copy(finished, tmp_path)
    before = snapshot(run)
    monkeypatch.chdir(tmp_path)
    judge(cli("generate", run, "--weights", "1,0", *options), *patterns, root=tmp_path, run=run, before=before)


@pytest.mark.parametrize("text, column", [
    (b"", "prompt"),
    (b'{"prompt": "hi"}\n', ""),
], ids=["empty-file", "empty-column-name"])
def test_serving_prompts_file_names_the_option(finished, tmp_path, text, column):  # noqa: F811
    run = finished_copy(finished, tmp_path)
    (tmp_path / "p.jsonl").write_bytes(text)
    result = cli("generate", run, "--weights", "1,0", "--prompts", tmp_path / "p.jsonl", "--prompt_column", column)
    judge(result, r"p\.jsonl", r"--prompt[_-]column|no prompts")
    assert "evaluate.prompt_column" not in result.err


# ---------------------------------------------------------------------------------------------------------------
# M. Config values whose range or finiteness is not checked when the config loads.

CONFIG_RANGES = [
    ("reference-point-nan", ["--evaluate.reference_point", "[.nan, .nan]"], [r"evaluate\.reference_point", "finite"]),
    ("reference-point-inf", ["--evaluate.reference_point", "[.inf, 0]"], [r"evaluate\.reference_point", "finite"]),
    ("consistency-tolerance-negative", ["--score.consistency_tolerance", "-1"],
     [r"score\.consistency_tolerance", "-1"]),
]


@pytest.mark.parametrize("overrides, patterns", [c[1:] for c in CONFIG_RANGES], ids=[c[0] for c in CONFIG_RANGES])
def test_config_ranges(tmp_path, overrides, patterns):
    judge(cli("score", config_with(tmp_path), *overrides), *patterns, root=tmp_path)
    assert not (tmp_path / "run" / "scores").exists()


def test_evaluate_reference_point_nan_on_a_finished_run(finished, tmp_path):  # noqa: F811
    root, config, _ = finished
    run = root / "run"
    before = snapshot(run)
    judge(cli("evaluate", config, "--evaluate.reference_point", "[.nan, .nan]"), r"evaluate\.reference_point",
          "finite", run=run, before=before)


def test_huge_preference_grid_is_refused_at_once(tmp_path):
    try:
        result = run_cli("plan", config_with(tmp_path), "--command", "select", "--preferences.n_points", "100000000",
                         cwd=tmp_path, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("plan with preferences.n_points 100000000 ran for more than 60 s")
    judge(result, r"preferences\.n_points", r"100000000")


# ---------------------------------------------------------------------------------------------------------------
# G. ``~`` in paths: the run writes a literal ./~ folder while pandas reads the expanded path; data.source is not
# expanded at all.


def test_output_dir_with_a_tilde(tmp_path):
    config = config_with(tmp_path)
    (tmp_path / "home").mkdir()
    result = run_cli("score", config, "--output_dir", "~/tilde-run", cwd=tmp_path, env={"HOME": str(tmp_path / "home")})
    assert result.code == 0, result.describe()
    assert (tmp_path / "home" / "tilde-run" / "scores" / "scores.parquet").exists()
    assert not (tmp_path / "~").exists(), "a literal '~' folder in the working directory"


def test_data_source_with_a_tilde(tmp_path):
    config = config_with(tmp_path)
    (tmp_path / "home").mkdir()
    shutil.copy2(tmp_path / "data.jsonl", tmp_path / "home" / "d.jsonl")
    result = run_cli("score", config, "--data.source", "~/d.jsonl", cwd=tmp_path, env={"HOME": str(tmp_path / "home")})
    assert result.code == 0, result.describe()


# ---------------------------------------------------------------------------------------------------------------
# H. An empty string for a path option.

EMPTY_PATHS = [
    ("compare-output", ["compare", "{run}", "--output", "", "--bootstrap", "10"], r"--output"),
    ("export-output", ["export", "{run}", "--weights", "1,0", "--output", ""], r"--output"),
    ("push-dry-run", ["push", "{run}", "--repo-prefix", "me/x", "--license", "mit", "--dry-run", ""], r"--dry-run"),
    ("rewards-fit-data", ["rewards", "fit", "--data", "", "--output", "{tmp}/h.npz"], r"--data"),
]


@pytest.mark.parametrize("argv, option", [c[1:] for c in EMPTY_PATHS], ids=[c[0] for c in EMPTY_PATHS])
def test_empty_path_options(finished, tmp_path, monkeypatch, argv, option):  # noqa: F811
    run = finished_copy(finished, tmp_path)
    monkeypatch.chdir(tmp_path)
    judge(cli(*[a.format(run=run, tmp=tmp_path) for a in argv]), option, r"empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"], "written into the working directory"


# ---------------------------------------------------------------------------------------------------------------
# N. Sentences that name the wrong thing.


def test_override_negative_index_keeps_its_spelling(tmp_path):
    judge(cli("score", config_with(tmp_path), "--objectives.-1.column", "b"), r"objectives\.-1")


def test_config_nested_too_deep(tmp_path):
    path = config_with(tmp_path)
    path.write_text(path.read_text() + "extra: " + "[" * 5000 + "]" * 5000 + "\n")
    result = cli("score", path)
    judge(result, r"config\.yaml", r"nest|deep")
    assert "must hold a mapping" not in result.err


def test_heartbeat_path_is_a_file(scored, tmp_path):  # noqa: F811
    config, run, before = copy_scored(scored, tmp_path)
    if (run / ".heartbeat").is_dir():
        shutil.rmtree(run / ".heartbeat")
    (run / ".heartbeat").write_text("x")
    judge(cli("select", config, "--force"), r"\.heartbeat", r"is a file|not a folder", code=None, run=run,
          before=before)


def test_status_of_a_run_written_by_another_version(finished, tmp_path):  # noqa: F811
    run = finished_copy(finished, tmp_path)
    path = run / "config.resolved.yaml"
    resolved = yaml.safe_load(path.read_text())
    resolved["select"]["future_knob"] = 3
    path.write_text(yaml.safe_dump(resolved))
    judge(cli("status", run), r"config\.resolved\.yaml", r"future_knob")


# ---------------------------------------------------------------------------------------------------------------
# P. PARETOHQD_PROGRESS; Q. --weights in Python's float syntax.


def test_progress_variable_garbage(tmp_path):
    result = run_cli("score", config_with(tmp_path), cwd=tmp_path, env={"PARETOHQD_PROGRESS": "garbage"})
    judge(result, r"PARETOHQD_PROGRESS", r"garbage", root=tmp_path)


def test_weights_with_an_underscore(finished, tmp_path):  # noqa: F811
    run = finished_copy(finished, tmp_path)
    judge(cli("export", run, "--weights", "1_0,1", "--output", tmp_path / "out"), r"--weights", r"1_0")
    assert not (tmp_path / "out").exists()

