"""report_to: every unit of one run in one group (W&B, through a stand-in module: no network) or one TensorBoard
folder, the run's summary (front, hypervolumes, collapse rate, report) logged by the evaluation; RUN/logs keeps each
unit's log; none of it changes a unit's key."""

import importlib.machinery
import os
import sys
import types

import pytest

import paretohqd
from paretohqd import io
from paretohqd.pipeline.rundir import tracker_group, unit_log_file
from paretohqd.pipeline.units import UnitLog
from paretohqd.tracking import Tracking, log_summary, summary_values, tracked, trainer_fields

from .test_pipeline import write_run_config


class StandInConfig(dict):
    def update(self, values, **kwargs):
        super().update(values)


class StandInWandb(types.ModuleType):
    """The part of the wandb module the trackers and transformers' WandbCallback use, recording every call (with
    the group and project the environment gives wandb.init, as the real one reads them)."""

    def __init__(self):
        super().__init__("wandb")
        self.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
        self.run = None
        self.inits, self.finished, self.logged = [], [], []
        self.config = StandInConfig()

    def init(self, **kwargs):
        self.inits.append({**kwargs, "env_group": os.environ.get("WANDB_RUN_GROUP"),
                           "env_project": os.environ.get("WANDB_PROJECT")})
        wandb = self

        class Run:
            def __init__(self):
                self.summary = {}
                self.name = kwargs.get("name")

            def log(self, values):
                wandb.logged.append(values)

            def finish(self):
                wandb.finish()

            def _label(self, **kwargs):
                pass

        self.run = Run()
        return self.run

    def log(self, values, **kwargs):
        self.run.log(values)

    def define_metric(self, *args, **kwargs):
        pass

    def termwarn(self, *args, **kwargs):
        pass

    def finish(self):
        self.finished.append(self.run)
        self.run = None

    class Table:
        def __init__(self, columns, data):
            self.columns, self.data = columns, data


@pytest.fixture
def wandb(monkeypatch):
    module = StandInWandb()
    monkeypatch.setitem(sys.modules, "wandb", module)
    config_util = types.ModuleType("wandb.sdk.lib.config_util")
    config_util.ConfigError = type("ConfigError", (Exception,), {})
    for name in ("wandb.sdk", "wandb.sdk.lib"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "wandb.sdk.lib.config_util", config_util)
    for name in ("WANDB_RUN_GROUP", "WANDB_PROJECT", "TENSORBOARD_LOGGING_DIR"):
        monkeypatch.delenv(name, raising=False)
    return module


def test_a_training_unit_joins_the_runs_group_and_its_run_is_finished_after(wandb, tmp_path):
    tracking = Tracking("wandb,tensorboard", "run-0123abcd", "train/stage1/pref_00", str(tmp_path / "tb"))
    with tracked(tracking):
        assert os.environ["WANDB_RUN_GROUP"] == "run-0123abcd" and os.environ["WANDB_PROJECT"] == "paretohqd"
        assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "tb")
        wandb.init(group=os.environ["WANDB_RUN_GROUP"])  # what the trainer's callback does
    assert wandb.run is None and len(wandb.finished) == 1  # the next unit gets a run of its own
    assert not {"WANDB_RUN_GROUP", "WANDB_PROJECT", "TENSORBOARD_LOGGING_DIR"} & set(os.environ)


def test_a_group_the_user_set_wins(wandb, monkeypatch):
    monkeypatch.setenv("WANDB_RUN_GROUP", "mine")
    with tracked(Tracking("wandb", "run-0123abcd", "unit")):
        assert os.environ["WANDB_RUN_GROUP"] == "mine"


def test_the_trainer_is_given_the_units_name():
    from trl import SFTConfig

    fields = trainer_fields(Tracking("tensorboard", "g", "train/stage1/pref_00", "/tmp/tb"), SFTConfig)
    assert fields["run_name"] == "train/stage1/pref_00"
    # transformers 5 has no logging_dir (the callback reads TENSORBOARD_LOGGING_DIR); earlier versions take it
    assert ("logging_dir" in fields) == any(f == "logging_dir" for f in SFTConfig.__dataclass_fields__)


def test_report_to_none_touches_nothing(wandb):
    with tracked(Tracking("none", "g", "unit", "/tmp/tb")):
        assert "WANDB_RUN_GROUP" not in os.environ and "TENSORBOARD_LOGGING_DIR" not in os.environ
    assert log_summary(Tracking("none", "g"), {"objectives": []}, "") == []


def test_the_summary_goes_to_wandb_and_tensorboard(served_run, wandb, tmp_path):
    pytest.importorskip("tensorboard", reason="the trackers extra (make venv installs it)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    metrics = io.read_json(served_run / "eval" / "metrics.json")
    tracking = Tracking("wandb,tensorboard", "run-0123abcd", "summary", str(tmp_path / "summary"))
    assert log_summary(tracking, metrics, "# report") == ["wandb", "tensorboard"]
    (init,) = wandb.inits
    assert init["group"] == "run-0123abcd" and init["name"] == "summary" and init["job_type"] == "evaluation"
    (run,) = wandb.finished
    values = summary_values(metrics)
    assert {k: run.summary[k] for k in values} == values and run.summary["report"] == "# report"
    first = metrics["preferences"][0]
    assert values[f"front/{first['model']}/{metrics['objectives'][0]}"] == first["mean_rewards"][0]
    assert values["hypervolume/hypervolume_minmax_run_worst"] == metrics["hypervolume_minmax_run_worst"]
    (table,) = [entry["front"] for entry in wandb.logged]
    assert table.columns[:2] == ["model", "weights"] and len(table.data) == len(metrics["preferences"]) + len(
        metrics.get("served") or []) + (1 if metrics.get("base") else 0)

    events = EventAccumulator(str(tmp_path / "summary"))
    events.Reload()
    scalars = {tag: events.Scalars(tag)[0].value for tag in events.Tags()["scalars"]}
    assert scalars["hypervolume/hypervolume_minmax_run_worst"] == pytest.approx(
        metrics["hypervolume_minmax_run_worst"])
    assert scalars["collapse_rate"] == pytest.approx(metrics["collapse_rate"])


def test_each_unit_leaves_its_log_in_the_run_directory(served_run):
    manifest = io.read_json(served_run / "manifest.json")
    for name, entry in manifest["units"].items():
        text = unit_log_file(served_run, name).read_text()
        assert f"{name}: started (attempt 1, key {entry['key']})" in text and f"{name}: done in" in text
    assert "optimizer steps" in unit_log_file(served_run, "train/stage1/pref_00").read_text()  # what it said


def test_a_log_line_is_on_disk_as_soon_as_it_is_said(tmp_path):
    said = []
    log = UnitLog(tmp_path / "logs" / "unit.log", said.append)
    log("first line")
    assert said == ["first line"] and (tmp_path / "logs" / "unit.log").read_text().endswith(" first line\n")


def test_report_to_is_in_no_key(tiny_policy, tmp_path):
    path = write_run_config(tmp_path, tiny_policy, stage2__enabled=False)
    plain = {u.name: u.key for u in paretohqd.plan(paretohqd.load_config(path)).units}
    tracked_plan = paretohqd.plan(paretohqd.load_config(path, ["--report_to", "wandb,tensorboard"])).units
    assert {u.name: u.key for u in tracked_plan} == plain
    trainer = next(u for u in tracked_plan if u.name == "train/stage1/pref_00")
    tracking = trainer.options["tracking"]
    assert tracking.group == tracker_group(tmp_path / "run") and tracking.name == "train/stage1/pref_00"
    assert tracking.tensorboard_dir == str(tmp_path / "run" / "logs" / "tensorboard" / "train/stage1/pref_00")


def test_a_tensorboard_run_writes_every_unit_and_the_summary_into_one_folder(tiny_policy, tmp_path):
    pytest.importorskip("tensorboard", reason="the trackers extra (make venv installs it)")
    path = write_run_config(tmp_path, tiny_policy, stage2__enabled=False, preferences__weights=[[1, 0], [0, 1]],
                            report_to="tensorboard")
    paretohqd.run(paretohqd.load_config(path), log=lambda *_: None)
    board = tmp_path / "run" / "logs" / "tensorboard"
    for unit in ("train/stage1/pref_00", "train/stage1/pref_01", "summary"):
        assert list((board / unit).glob("events.out.tfevents.*")), unit
    assert not list((tmp_path / "run" / "models").rglob("events.out.tfevents.*"))


def test_a_tracker_that_is_not_installed_is_refused_before_any_work(monkeypatch):
    import importlib.util

    from paretohqd.errors import UserError
    from paretohqd.tracking import check_report_to

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    monkeypatch.delitem(sys.modules, "wandb", raising=False)
    with pytest.raises(UserError, match=r"report_to: wandb is not installed here \(pip install wandb\)"):
        check_report_to("tensorboard,wandb")
    check_report_to("none")
    check_report_to("tensorboard")


def test_several_trackers_reach_the_trainer_as_a_list():
    assert Tracking("wandb, tensorboard").integrations == ["wandb", "tensorboard"]
    assert Tracking("none").integrations == []


def test_a_wandb_run_is_one_group_of_one_run_per_unit_and_the_summary(tiny_policy, tmp_path, wandb):
    path = write_run_config(tmp_path, tiny_policy, stage2__enabled=False, preferences__weights=[[1, 0], [0, 1]],
                            report_to="wandb")
    paretohqd.run(paretohqd.load_config(path), log=lambda *_: None)
    group = tracker_group(tmp_path / "run")
    assert [init.get("name") for init in wandb.inits] == ["train/stage1/pref_00", "train/stage1/pref_01", "summary"]
    assert all(init["env_group"] == group and init["env_project"] == "paretohqd" for init in wandb.inits[:2])
    assert wandb.inits[2]["group"] == group and wandb.inits[2]["job_type"] == "evaluation"
    assert len(wandb.finished) == 3 and wandb.run is None  # each unit's run ended before the next began
    assert any("train/loss" in values for values in wandb.logged)  # the trainers logged into their runs
    summary = wandb.finished[2].summary
    metrics = io.read_json(tmp_path / "run" / "eval" / "metrics.json")
    assert summary["hypervolume/hypervolume_minmax_run_worst"] == metrics["hypervolume_minmax_run_worst"]
