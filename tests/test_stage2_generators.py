"""Stage 2's generators are the preferences docs/concepts/two-stages.md names (every one-hot and the balanced one), or
those ``stage2.generators`` gives; one missing from the grid is trained at stage 1 as a generator only."""

import json

import pytest
import yaml

from paretohqd.cli import main
from paretohqd.config import load_config
from paretohqd.errors import UserError
from paretohqd.methods import get_method
from paretohqd.pipeline import build_plan

from .test_pipeline import write_run_config


def plan_units(config):
    return {u.name: u for u in build_plan(get_method("paretohqd"), config).units}


def test_the_balanced_generator_is_trained_when_the_grid_lacks_it(tiny_policy, tmp_path):
    config = load_config(write_run_config(tmp_path, tiny_policy))
    config.preferences.weights = [[1, 0], [0.4, 0.6], [0, 1]]
    units = plan_units(config)
    generate = sorted(n for n in units if n.startswith("stage2/generate/"))
    assert generate == ["stage2/generate/generator_02", "stage2/generate/pref_00", "stage2/generate/pref_02"]
    selection = units["train/stage1/generator_02"].upstream["selection"]
    assert selection.settings["weights"] == [0.5, 0.5] and selection.upstream["pool"] is units["select/pool"]
    assert "train/stage2/generator_02" not in units  # a generator only: never trained further nor evaluated
    assert len([n for n in units if n.startswith("train/stage2/")]) == 3

    config.stage2.missing_generators = "nearest"  # the nearest grid preference stands in
    assert sorted(n for n in plan_units(config) if n.startswith("stage2/generate/")) == [
        "stage2/generate/pref_00", "stage2/generate/pref_01", "stage2/generate/pref_02"]

    config.stage2.missing_generators = "train"
    config.stage2.generators = [[1, 0], [0.2, 0.8]]
    units = plan_units(config)
    assert sorted(n for n in units if n.startswith("stage2/generate/")) == [
        "stage2/generate/generator_01", "stage2/generate/pref_00"]
    config.stage2.generators = [[1, 0, 0]]
    with pytest.raises(UserError, match=r"stage2.generators"):
        plan_units(config)


def test_stage2_k_is_half_of_stage1s_given_or_by_the_rule_on_the_generated_pool(tiny_policy, tmp_path):
    config = load_config(write_run_config(tmp_path, tiny_policy))
    config.select.k, config.stage2.k = 10, None
    units = plan_units(config)
    # A given k keeps the settings, and so the keys, that runs had before the rule existed.
    assert units["select/pref_00"].settings["k"] == 10 and "k_rule" not in units["select/pref_00"].settings
    assert units["stage2/select/pref_00"].settings["k"] == 5 and "k_rule" not in units["stage2/select/pref_00"].settings
    config.select.k = None
    units = plan_units(config)
    assert units["select/pref_00"].settings["k"] is None
    assert units["select/pref_00"].settings["k_rule"] == {"fraction": 0.0003125, "min": 100, "divisor": 1}
    # Stage 2: half of what the rule gives on the generated samples (the paper's 50 of 30,000).
    assert units["stage2/select/pref_00"].settings["k_rule"] == {"fraction": 0.0003125, "min": 100, "divisor": 2}


def test_grid_with_every_representative_keeps_its_generators(tiny_policy, tmp_path):
    units = plan_units(load_config(write_run_config(tmp_path, tiny_policy)))  # (1,0), (.5,.5), (0,1)
    assert sorted(n for n in units if n.startswith("stage2/generate/")) == [
        "stage2/generate/pref_00", "stage2/generate/pref_01", "stage2/generate/pref_02"]
    assert not any("generator_" in n for n in units)


def test_a_generator_only_model_trains_generates_and_is_not_evaluated(tiny_policy, tmp_path):
    path = write_run_config(tmp_path, tiny_policy)
    raw = yaml.safe_load(path.read_text())
    raw["preferences"]["weights"] = [[1, 0], [0.3, 0.7], [0, 1]]
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path)]) == 0
    run = tmp_path / "run"
    assert (run / "models" / "generator_02" / "stage1" / ".complete").exists()
    assert (run / "stage2" / "generations" / "generator_02.jsonl").exists()
    assert json.loads((run / "selection" / "generator_02.json").read_text())["weights"] == [0.5, 0.5]
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert [p["model"] for p in metrics["preferences"]] == ["pref_00", "pref_01", "pref_02"]
