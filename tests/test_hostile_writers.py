"""The hostile catalogue, continued: whose run a folder holds, one writer at a time, and weights at any scale.

Judged as ``tests/test_hostile.py`` judges (exit code, one ``paretohqd: error:`` line, no traceback, nothing partial,
earlier results byte for byte), plus: a refused command leaves the other run's resolved config as it was.

A folder holds *another run* when its method, its objectives (names, in order: the space its front lives in), its
policy model or its data differ; data stays the same data when its source or its content stays the same (an edited
row is a change within the run, which the unit keys rerun; the same file at another path is the same data). The
preference grid and every other setting are changes within a run: the keys rerun what they touch, and ``run`` prunes
what the plan no longer has.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import paretohqd
from paretohqd.locking import LOCK_NAME, output_lock_file

from .conftest import REPO
from .test_hostile import (
    TRAIN_FAST,
    _callable,
    cli,
    config_with,
    copy_scored,
    judge,
    rows,
    scored,
    snapshot,
    write_rows,
)

__all__ = ["scored"]  # the finished score + select directory, a fixture of the catalogue's first part


# ---------------------------------------------------------------------------------------------------------------
# Helpers: another process that holds a lock, and a finished directory's resolved config.


@contextlib.contextmanager
def holder(lock_file: Path, argv=("run", "other.yaml"), then: str = "time.sleep(600)"):
    """A separate process that takes ``lock_file`` as ``paretohqd ARGV`` would, says so, then runs ``then``."""
    code = ("import os, sys, time\n"
            "from paretohqd import locking\n"
            f"locking.set_command({list(argv)!r})\n"
            f"with locking.writer_lock({str(lock_file)!r}, 'the test holder'):\n"
            "    print('held', flush=True)\n"
            f"    {then}\n")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=str(REPO), stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()


def resolved(run: Path) -> bytes:
    return (run / "config.resolved.yaml").read_bytes()


# ---------------------------------------------------------------------------------------------------------------
# A run directory knows its run.

ANOTHER_RUN = [
    ("another-method", ["--method", "sft"], [r"holds another run", r"method paretohqd, not sft", "--overwrite"]),
    ("other-objectives", ["--objectives", '[{name: obj_a, type: column, column: a}, {name: obj_c, type: column, '
                          'column: b}]'], [r"holds another run", r"objectives obj_a, obj_b, not obj_a, obj_c"]),
    ("other-model", ["--model.name_or_path", "someone/another-model"],
     [r"holds another run", r"model embedded:smollm2-135m-instruct, not someone/another-model"]),
]


@pytest.mark.parametrize("overrides, patterns", [c[1:] for c in ANOTHER_RUN], ids=[c[0] for c in ANOTHER_RUN])
def test_a_folder_holding_another_run_is_refused(scored, tmp_path, overrides, patterns):
    config, run, before = copy_scored(scored, tmp_path)
    config_before = resolved(run)
    judge(cli("score", config, *overrides), *patterns, root=tmp_path, run=run, before=before)
    assert resolved(run) == config_before


def test_other_data_is_another_run(scored, tmp_path):
    config, run, before = copy_scored(scored, tmp_path)
    other = write_rows(tmp_path / "other.jsonl", rows(25))
    judge(cli("score", config, "--data.source", other), r"holds another run", r"data .*data\.jsonl, not .*other\.jsonl",
          root=tmp_path, run=run, before=before)


def test_the_same_data_at_another_path_is_the_same_run(scored, tmp_path):
    """A run directory copied with its data to another place, or data moved: nothing reruns."""
    config, run, before = copy_scored(scored, tmp_path)
    moved = tmp_path / "moved" / "data.jsonl"
    moved.parent.mkdir()
    shutil.copy2(tmp_path / "data.jsonl", moved)
    result = cli("select", config, "--data.source", moved)
    assert result.code == 0, result.describe()
    assert "done already" in result.out and snapshot(run) == before


def test_an_edited_row_is_a_change_within_the_run(scored, tmp_path):
    config, run, before = copy_scored(scored, tmp_path)
    assert cli("score", config).code == 0  # the copy's data: the same samples, so the same run, now read from here
    records = rows()
    records[4]["a"] = 0.123
    write_rows(tmp_path / "data.jsonl", records)
    result = cli("score", config)
    assert result.code == 0, result.describe()
    assert snapshot(run)["scores/scores.parquet"] != before["scores/scores.parquet"]


def test_an_output_dir_that_links_to_another_run_is_refused(scored, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    _config, run, before = copy_scored(scored, other)
    link = tmp_path / "link"
    link.symlink_to(run, target_is_directory=True)
    mine = config_with(tmp_path, output_dir=str(link), method="sft")
    judge(cli("score", mine), r"output_dir '.*link' holds another run", root=tmp_path, run=run, before=before)


def test_overwrite_clears_the_other_run_first(scored, tmp_path):
    """No merge of two runs' files: what the other run had and this one does not make is gone."""
    config, run, before = copy_scored(scored, tmp_path)
    assert "selection/pref_10.json" in before
    overrides = ["--objectives", "[{name: obj_a, type: column, column: a}, {name: obj_c, type: column, column: b}]",
                 "--preferences.n_points", "3"]
    judge(cli("select", config, *overrides), r"holds another run", root=tmp_path, run=run, before=before)
    result = cli("select", config, *overrides, "--overwrite")
    assert result.code == 0, result.describe()
    assert "cleared (--overwrite)" in result.out
    after = snapshot(run)
    assert sorted(p for p in after if p.startswith("selection/pref_")) == [
        f"selection/pref_{i:02d}.json" for i in range(3)]
    assert not any("obj_b" in path for path in after), "the other run's score shards were left"
    assert yaml.safe_load(resolved(run))["objectives"][1]["name"] == "obj_c"
    assert not (run / LOCK_NAME).exists()


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
def test_a_folder_of_other_files_is_never_written_or_cleared(tmp_path, overwrite):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("precious\n")
    config = config_with(tmp_path, output_dir=str(precious))
    judge(cli("score", config, *(["--overwrite"] if overwrite else [])), r"holds files that are not a paretohqd run",
          r"notes\.txt", *([r"--overwrite clears only a run"] if overwrite else []), root=tmp_path)
    assert sorted(p.name for p in precious.iterdir()) == ["notes.txt"]


def test_a_damaged_resolved_config_is_named(scored, tmp_path):
    config, run, before = copy_scored(scored, tmp_path)
    (run / "config.resolved.yaml").write_bytes(b"method: [unclosed\n")
    judge(cli("score", config), r"damaged config\.resolved\.yaml", "--overwrite", root=tmp_path, run=run,
          before=before)


# ---------------------------------------------------------------------------------------------------------------
# One writer at a time.


def test_a_second_writer_of_a_run_directory_is_told_who_holds_it(tmp_path):
    """Two `paretohqd score` on one output_dir at once: the second names the first and changes nothing."""
    config = config_with(tmp_path, objectives=[{"name": "obj_a", "type": "column", "column": "a"},
                                               {**_callable("slow", "slow_length"), "batch_size": 20}],
                         score={"shard_size": 20, "consistency_check": 0})
    env = {**os.environ, "PARETOHQD_PROGRESS": "0", "PARETOHQD_TEST_SLOW": "0.25"}
    first = subprocess.Popen([sys.executable, "-m", "paretohqd.cli", "score", str(config)], cwd=str(REPO), env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shards = tmp_path / "run" / "scores" / "cache" / "slow"
    deadline = time.time() + 60
    while first.poll() is None and time.time() < deadline and not list(shards.glob("*.npy")):
        time.sleep(0.02)
    try:
        assert first.poll() is None, "the first run ended before the second started"
        judge(cli("score", config), rf"output_dir '.*run' is in use by `paretohqd score {re.escape(str(config))}` "
              rf"\(pid {first.pid} on [^,]+, since [-0-9: ]+\)", r"--wait", root=None)
    finally:
        _out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert len(list(shards.glob("*.npy"))) == 15 and not (tmp_path / "run" / LOCK_NAME).exists()


def test_wait_waits_for_the_holder_then_runs(tmp_path):
    config = config_with(tmp_path)
    (tmp_path / "run").mkdir()
    with holder(tmp_path / "run" / LOCK_NAME, then="time.sleep(1.5)") as process:
        began = time.time()
        result = cli("score", config, "--wait")
        assert process.wait() == 0
    assert result.code == 0, result.describe()
    assert time.time() - began >= 1.0
    assert "is in use by `paretohqd run other.yaml`" in result.out and "waiting for it" in result.out
    assert (tmp_path / "run" / "scores" / "scores.parquet").is_file()


def test_a_relaunch_is_refused_before_any_process_starts(tmp_path, monkeypatch):
    import accelerate.commands.launch

    def never(*args, **kwargs):
        raise AssertionError("accelerate launch started")

    monkeypatch.setattr(accelerate.commands.launch, "launch_command", never)
    config = config_with(tmp_path)
    (tmp_path / "run").mkdir()
    with holder(tmp_path / "run" / LOCK_NAME):
        # --num_processes: without it a GPU-less machine is refused first, for having no GPU to start a process on
        judge(cli("run", config, "--accelerate_config", "ddp", "--num_processes", "2"),
              r"output_dir '.*run' is in use by `paretohqd run "
              r"other\.yaml`", root=tmp_path)


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    config = config_with(tmp_path)
    (tmp_path / "run").mkdir()
    with holder(tmp_path / "run" / LOCK_NAME, then="os.kill(os.getpid(), 9)") as process:
        assert process.wait() == -signal.SIGKILL
    assert json.loads((tmp_path / "run" / LOCK_NAME).read_text())["pid"] == process.pid
    result = cli("score", config)
    assert result.code == 0, result.describe()
    assert re.search(rf"`paretohqd run other\.yaml` \(pid {process.pid} .*ended without releasing its lock.*taking "
                     "it over", result.out), result.out
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_a_shared_score_cache_has_one_writer(tmp_path):
    cache = tmp_path / "cache"
    for name in "abc":
        (tmp_path / name).mkdir()
    first = config_with(tmp_path / "a", score={"cache_dir": str(cache)})
    assert cli("score", first).code == 0
    again = config_with(tmp_path / "b", score={"cache_dir": str(cache)})
    records = rows()
    records[0]["a"] = 0.5  # one new shard to write
    write_rows(tmp_path / "b" / "data.jsonl", records)
    with holder(cache / LOCK_NAME, argv=("run", "a.yaml")):
        judge(cli("score", again), rf"score\.cache_dir '{re.escape(str(cache))}' is in use by `paretohqd run a\.yaml`",
              r"another score\.cache_dir", root=tmp_path / "b")
        reader = config_with(tmp_path / "c", score={"cache_dir": str(cache)})
        result = cli("score", reader)  # every shard it needs is in the cache: it only reads
        assert result.code == 0, result.describe()


def test_an_export_folder_has_one_writer(served_run, tmp_path):
    target = tmp_path / "w05"
    with holder(output_lock_file(target), argv=("export", "runs/x", "--weights", "1,1", "--output", str(target))):
        judge(cli("export", served_run, "--weights", "1,1", "--output", target),
              r"export folder '.*w05' is in use by `paretohqd export runs/x", root=tmp_path)
    assert not target.exists()
    assert cli("export", served_run, "--weights", "1,1", "--output", target).code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w05"]


def test_generate_output_refuses_an_existing_file_unless_overwrite(served_run, tmp_path):
    output = tmp_path / "mine.jsonl"
    output.write_text("a user's file\n")
    judge(cli("generate", served_run, "--weights", "1,1", "--prompt", "hello", "--output", output),
          r"--output '.*mine\.jsonl' exists", "--overwrite", root=tmp_path)
    assert output.read_text() == "a user's file\n"
    result = cli("generate", served_run, "--weights", "1,1", "--prompt", "hello", "--output", output, "--overwrite")
    assert result.code == 0, result.describe()
    assert json.loads(output.read_text())["prompt"] == "hello"


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
def test_generate_output_never_writes_inside_a_run_directory(served_run, overwrite):
    own = served_run / "generations" / "pref_01.jsonl"
    before = own.read_bytes()
    judge(cli("generate", served_run, "--weights", "1,1", "--prompt", "hello", "--output", own,
              *(["--overwrite"] if overwrite else [])), r"lies inside the run directory", root=served_run)
    assert own.read_bytes() == before


def test_generate_output_that_is_a_folder_is_refused_before_the_model_loads(served_run, tmp_path, monkeypatch):
    from paretohqd import serving

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(serving, "load_policy", never)
    judge(cli("generate", served_run, "--weights", "1,1", "--prompt", "hello", "--output", tmp_path),
          r"is a folder", root=tmp_path)


def test_an_export_into_a_run_directory_is_refused(served_run):
    judge(cli("export", served_run, "--weights", "1,1", "--output", served_run / "exports" / "w05"),
          r"lies inside the run directory", root=served_run)
    assert not (served_run / "exports").exists()


# ---------------------------------------------------------------------------------------------------------------
# Weights at any scale: (1.7e308, 1.7e307) is (0.909, 0.091), everywhere weights are read.

HUGE = "1.7e308,1.7e307"


def test_huge_weights_serve_the_preference_they_mean(served_run):
    huge = cli("generate", served_run, "--weights", HUGE, "--prompt", "hello")
    plain = cli("generate", served_run, "--weights", "0.909,0.091", "--prompt", "hello")
    assert huge.code == 0 and plain.code == 0, huge.describe()
    assert "serving preference (0.909, 0.0909)" in huge.err and "its model pref_00" in huge.err, huge.err
    assert huge.out == plain.out


def test_huge_weights_export(served_run, tmp_path):
    result = cli("export", served_run, "--weights", HUGE, "--output", tmp_path / "out")
    assert result.code == 0, result.describe()
    record = json.loads((tmp_path / "out" / "paretohqd.json").read_text())
    np.testing.assert_allclose(record["weights"], [10 / 11, 1 / 11], rtol=1e-12)


def test_huge_weights_in_a_config_grid(tmp_path):
    config = config_with(tmp_path, preferences={"grid": "explicit", "weights": [[1.7e308, 1.7e307], [0, 1]]})
    result = cli("select", config)
    assert result.code == 0, result.describe()
    chosen = json.loads((tmp_path / "run" / "selection" / "pref_00.json").read_text())
    np.testing.assert_allclose(chosen["weights"], [10 / 11, 1 / 11], rtol=1e-12)


@pytest.mark.parametrize("method", ["soups", "ric"])
def test_huge_weights_mix_the_soup_and_condition_ric_as_they_mean(tiny_policy, tmp_path, method):
    """The methods' own rules for any preference (the soup's mix, RiC's target rewards) get the normalised weights."""
    from paretohqd.methods import get_method
    from paretohqd.pipeline.serve import check_serving_weights

    from .test_pipeline import write_run_config

    config = paretohqd.load_config(write_run_config(tmp_path, tiny_policy, method=method, **TRAIN_FAST))
    plan = paretohqd.plan(config, "train")
    rule = get_method(method)
    huge = rule.served_model(plan.shared, plan.training, check_serving_weights([1.7e308, 1.7e307], 2))
    meant = huge.mix if method == "soups" else huge.condition_settings["weights"]
    np.testing.assert_allclose(meant, [10 / 11, 1 / 11], rtol=1e-12)
