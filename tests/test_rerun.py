"""What reruns when something changes: the table that pins every unit key (``pipeline.units``).

Each row starts from a copy of one finished run, makes one change, runs the whole pipeline again and compares the
units that ran (and those whose outputs were reused from another unit with the same key) with what the row says.
"""

import os
import shutil

import pandas as pd
import pytest
import yaml

import paretohqd
from paretohqd.config import load_config

from .test_pipeline import write_run_config

PREFS = ("pref_00", "pref_01", "pref_02")
HELD_OUT = {f"generate/{p}" for p in PREFS} | {"generate/base", "evaluate", "report"}
STAGE1_HELD_OUT = {f"generate/{p}_stage1" for p in PREFS}  # ParetoHqD's stage-1 models, evaluated off the front
NEW_GRID = [[1, 0], [0.25, 0.75], [0.5, 0.5], [0, 1]]


def names(*patterns):
    return {pattern.format(p=p) for pattern in patterns for p in PREFS}


@pytest.fixture(scope="module")
def finished(tiny_policy, tmp_path_factory):
    """One finished run of each method on the tiny policy (three preferences, three score shards per objective)."""
    root = tmp_path_factory.mktemp("rerun")
    runs = {}
    for method in ("paretohqd", "ric", "soups", "sft"):
        path = write_run_config(root, tiny_policy, run_name=method, score__shard_size=16)
        raw = yaml.safe_load(path.read_text())
        raw["method"] = method
        raw["ric"] = {"online": {"iterations": 0}, "offline": {"sft": {"max_steps": 2}, "lora": {"r": 4}}}
        path.write_text(yaml.safe_dump(raw))
        paretohqd.run(load_config(path))
        runs[method] = (path, raw)
    return root, runs


def rerun(finished, tmp_path, method, overrides=(), edit=None, copy=shutil.copy2):
    """Copy the finished run (``copy``: each file's, keeping its times by default), apply the change, run again;
    (units that ran, units reused)."""
    root, runs = finished
    path, raw = runs[method]
    run_dir = tmp_path / "run"
    shutil.copytree(root / method, run_dir, copy_function=copy)
    data = tmp_path / "data.jsonl"
    shutil.copy2(raw["data"]["source"], data)
    # The copy is a run made on this data file, as if it had been made here: an edit below is then a change within
    # the run (a folder whose data differs in both source and content holds another run: test_hostile_writers.py).
    resolved = run_dir / "config.resolved.yaml"
    copied = yaml.safe_load(resolved.read_text())
    copied["data"]["source"] = str(data)
    resolved.write_text(yaml.safe_dump(copied, sort_keys=False))
    if edit is not None:
        edit(data)
    config = load_config(path, ["--output_dir", str(run_dir), "--data.source", str(data), *overrides])
    execution = paretohqd.run_stage(config, "run", log=lambda *_: None)
    return set(execution.ran), set(execution.reused)


def edit_one_row(path):
    frame = pd.read_json(path, lines=True)
    frame.loc[20, "response"] = "an edited reply with new words"
    frame.to_json(path, orient="records", lines=True)


def touch(path):
    os.utime(path, (1_000_000_000, 1_000_000_000))


def recopy(path):
    content = path.read_bytes()
    path.unlink()
    path.write_bytes(content)


STAGE1 = names("select/{p}", "train/stage1/{p}")
STAGE2 = names("stage2/select/{p}", "train/stage2/{p}")
SUMMARIES = {"select/summary", "select/plot", "stage2/select/summary", "stage2/select/plot"}
PARETOHQD_ROWS = [
    # (change, overrides, data edit, expected to run)
    ("touching the data file", (), touch, set()),
    ("re-copying an identical data file", (), recopy, set()),
    ("select.plot off", ("--select.plot", "false"), None, set()),
    ("score.progress off", ("--score.progress", "false"), None, set()),
    ("train.sft.logging_steps", ("--train.sft.logging_steps", "2"), None, set()),
    ("report_to", ("--report_to", "tensorboard"), None, set()),
    ("a scoring batch size", ("--objectives.0.batch_size", "3"), None, set()),
    ("a scoring device", ("--objectives.1.device", "cuda:0"), None, set()),
    ("the policy's device", ("--model.device", "cpu"), None, set()),
    ("score.shard_size", ("--score.shard_size", "7"), None, set()),
    ("score.cache_dir", ("--score.cache_dir", "runs/elsewhere"), None, set()),
    ("evaluate.sample_outputs", ("--evaluate.sample_outputs", "1"), None, {"report"}),
    ("evaluate.sampling.temperature", ("--evaluate.sampling.temperature", "0.5"), None, HELD_OUT | STAGE1_HELD_OUT),
    ("stage2.k", ("--stage2.k", "2"), None,
     STAGE2 | {"stage2/select/summary", "stage2/select/plot"} | HELD_OUT - {"generate/base"}),
    ("stage2.sft.learning_rate", ("--stage2.sft.learning_rate", "0.01"), None,
     names("train/stage2/{p}") | HELD_OUT - {"generate/base"}),
]


@pytest.mark.parametrize("change, overrides, edit, expected", PARETOHQD_ROWS, ids=[r[0] for r in PARETOHQD_ROWS])
def test_paretohqd_reruns_exactly_what_a_change_touches(finished, tmp_path, change, overrides, edit, expected):
    ran, _ = rerun(finished, tmp_path, "paretohqd", overrides, edit)
    assert ran == expected


@pytest.mark.parametrize("method", ["paretohqd", "ric"])
def test_a_run_copied_with_new_times_elsewhere_reruns_nothing(finished, tmp_path, method):
    """`cp -r` to another path: every file has a new modification time; the bytes are the same."""
    assert rerun(finished, tmp_path, method, copy=shutil.copy) == (set(), set())


def test_editing_one_data_row_reruns_its_shards_and_everything_after(finished, tmp_path):
    ran, _ = rerun(finished, tmp_path, "paretohqd", edit=edit_one_row)
    shards = {name for name in ran if name.startswith("score/") and name.rsplit("/", 1)[-1].isdigit()}
    # Row 20 lies in the second shard of 16 rows: that shard is rescored for each objective, no other.
    assert shards == {"score/brevity/000001", "score/vowels/000001"}
    expected = ({"inputs/samples", "score", "score/brevity/check", "score/vowels/check", "select/pool",
                 "stage2/score", "stage2/select/pool"} | STAGE1 | STAGE2 | SUMMARIES
                | names("stage2/generate/{p}") | HELD_OUT - {"generate/base"} | STAGE1_HELD_OUT)
    assert ran - shards == expected


def test_a_new_preference_trains_alone_and_the_moved_ones_are_reused(finished, tmp_path):
    ran, reused = rerun(finished, tmp_path, "paretohqd", ("--preferences.weights", str(NEW_GRID)))
    new = {"select/pref_01", "train/stage1/pref_01", "stage2/select/pref_01", "train/stage2/pref_01",
           "generate/pref_01", "generate/pref_01_stage1"}
    assert ran == new | SUMMARIES | {"evaluate", "report"}
    moved = {f"{stage}/pref_{i:02d}" for i in (2, 3)
             for stage in ("select", "train/stage1", "stage2/select", "train/stage2", "generate")}
    moved |= {f"generate/pref_{i:02d}_stage1" for i in (2, 3)}
    # The representative generators (1, 0), (0.5, 0.5), (0, 1) are the same models under new names.
    assert reused == moved | {"stage2/generate/pref_02", "stage2/generate/pref_03"}
    metrics = pd.read_json(tmp_path / "run" / "eval" / "metrics.json", typ="series")
    assert [p["weights"] for p in metrics["preferences"]] == NEW_GRID


@pytest.mark.parametrize("method", ["ric", "soups"])
def test_baselines_regenerate_only_the_changed_preferences(finished, tmp_path, method):
    ran, reused = rerun(finished, tmp_path, method, ("--preferences.weights", str(NEW_GRID)))
    assert ran == {"generate/pref_01", "evaluate", "report"}
    assert reused == {"generate/pref_02", "generate/pref_03"}


def test_sft_is_not_touched_by_the_preference_grid(finished, tmp_path):
    assert rerun(finished, tmp_path, "sft", ("--preferences.weights", str(NEW_GRID))) == (set(), set())


@pytest.mark.parametrize("method", ["ric", "soups"])
def test_baselines_held_out_sampling_reruns_generation_only(finished, tmp_path, method):
    ran, _ = rerun(finished, tmp_path, method, ("--evaluate.sampling.top_p", "0.5"))
    assert ran == HELD_OUT


def test_an_edited_output_is_redone_and_what_read_it_reruns(finished, tmp_path):
    """A generation file changed after its unit finished: the unit makes it again and the evaluation that read it
    runs again; the model's weights edited in place retrain that model and everything after it."""
    root, _runs = finished
    generations = root / "paretohqd" / "generations" / "pref_01.jsonl"
    original = generations.read_bytes()

    def edit_generations(data):
        target = tmp_path / "run" / "generations" / "pref_01.jsonl"
        target.write_bytes(original.replace(b'"response"', b'"response"', 1) + b"\n")

    ran, _ = rerun(finished, tmp_path, "paretohqd", edit=edit_generations)
    assert ran == {"generate/pref_01", "evaluate", "report"}
    assert (tmp_path / "run" / "generations" / "pref_01.jsonl").read_bytes() == original
