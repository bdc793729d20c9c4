"""The Python API, as the README shows it."""

import subprocess
import sys

import numpy as np

import paretohqd

from .test_cli import write_config
from .test_pipeline import write_run_config


def test_import_is_light_and_lists_the_api():
    code = ("import sys, paretohqd, paretohqd.pareto; "
            "heavy = [m for m in ('torch', 'transformers', 'pandas', 'trl') if m in sys.modules]; "
            "assert not heavy, heavy; print(paretohqd.__all__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in ("load_config", "run", "run_stage", "plan", "compare"):
        assert name in out


def test_stages_and_plan_from_python(tmp_path):
    config = paretohqd.load_config(write_config(tmp_path), overrides=["--select.k", "5"])
    execution = paretohqd.run_stage(config, "select", log=lambda *_: None)
    assert "score" in execution.ran and "select/pref_00" in execution.ran
    assert paretohqd.run_stage(config, "select", log=lambda *_: None).ran == []
    plan = paretohqd.plan(config, "select")
    selection = [u for u in plan.units if u.name.startswith("select/pref_")]
    assert len(selection) == 11 and all(len(u.key) == 20 for u in selection)
    assert selection[0].settings["weights"] == [0.0, 1.0] and selection[0].settings["k"] == 5


def test_run_returns_the_metrics(tiny_policy, tmp_path):
    path = write_run_config(tmp_path, tiny_policy, stage2__enabled=False, preferences__weights=[[1, 0], [0, 1]])
    metrics = paretohqd.run(paretohqd.load_config(path), log=lambda *_: None)
    assert metrics["method"] == "ParetoHqD" and [p["weights"] for p in metrics["preferences"]] == [[1, 0], [0, 1]]
    assert 0.0 <= metrics["hypervolume_minmax_run_worst"] <= 1.0 and "train_stage1" in metrics["wall_seconds"]


def test_pareto_functions_are_public():
    from paretohqd.pareto import hypervolume, resolve_grid, select_for_preferences

    rng = np.random.default_rng(0)
    points = rng.random((500, 2))
    weights = resolve_grid("linear", 2, n_points=3)
    selection = select_for_preferences(points, weights, k=10, min_pool=50, maximise=True)
    assert len(selection) == 3 and all(len(result.indices) == 10 for result in selection)
    assert hypervolume(points[selection[1].indices], [0.0, 0.0], maximise=True) > 0
