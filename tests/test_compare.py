import json

import numpy as np

from paretohqd.cli import main

from .test_evaluate import staircase_area


def fake_run(root, name, method, points, collapse, seconds, objectives=("harmless", "helpful")):
    run = root / name
    (run / "eval").mkdir(parents=True)
    metrics = {"method": method, "objectives": list(objectives), "collapse_rate": collapse,
               "wall_seconds": {"total": seconds}, "num_test_prompts": 10,
               "preferences": [{"model": f"pref_{i}", "weights": None, "mean_rewards": list(p)}
                               for i, p in enumerate(points)]}
    (run / "eval" / "metrics.json").write_text(json.dumps(metrics))
    return str(run)


def test_compare_shares_one_reference_and_reports_ratios(tmp_path, capsys):
    ours = fake_run(tmp_path, "a", "ParetoHqD", [[0.0, 4.0], [2.0, 3.0], [4.0, 0.0]], 0.05, 100.0)
    theirs = fake_run(tmp_path, "b", "RiC", [[1.0, 2.0], [3.0, 1.0]], 0.30, 250.0)
    assert main(["compare", ours, theirs, "--output", str(tmp_path / "cmp")]) == 0
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert result["reference_point"]["raw"] == [0.0, 0.0]  # worst corner of the union of both runs
    assert result["normalisation"]["high"] == [4.0, 4.0]
    hv = {row["label"]: row["hypervolume"] for row in result["runs"]}
    scale = np.array([4.0, 4.0])
    np.testing.assert_allclose(hv["ParetoHqD"], staircase_area(np.array([[0, 4], [2, 3], [4, 0]]) / scale,
                                                               np.zeros(2)))
    np.testing.assert_allclose(hv["RiC"], staircase_area(np.array([[1, 2], [3, 1]]) / scale, np.zeros(2)))
    ric = next(row for row in result["runs"] if row["method"] == "RiC")
    np.testing.assert_allclose(ric["hypervolume_vs_paretohqd"], hv["RiC"] / hv["ParetoHqD"])
    np.testing.assert_allclose(ric["time_vs_paretohqd"], 2.5)
    out = capsys.readouterr().out
    assert "HV / ParetoHqD" in out and "reference point (0, 0) raw" in out
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 1000


def test_compare_refuses_mismatched_or_missing_runs(tmp_path, capsys):
    first = fake_run(tmp_path, "a", "ParetoHqD", [[0.0, 1.0]], 0.0, 1.0)
    other = fake_run(tmp_path, "b", "SFT", [[0.0, 1.0]], 0.0, 1.0, objectives=("faithful", "concise"))
    assert main(["compare", first, other, "--output", str(tmp_path / "cmp")]) == 2
    assert "only runs on the same objectives" in capsys.readouterr().err
    assert main(["compare", first, str(tmp_path / "nothing")]) == 2
    assert "has no eval/metrics.json" in capsys.readouterr().err
