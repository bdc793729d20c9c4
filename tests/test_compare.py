"""`paretohqd compare`: one hypervolume definition, bootstrap intervals over test prompts (against a plain-loop
oracle), paired probabilities, seeds, cost columns, bad input."""

import json

import moocore
import numpy as np
import pandas as pd
import pytest

from paretohqd.cli import main
from paretohqd.errors import UserError
from paretohqd.evaluate.bootstrap import bootstrap_indices
from paretohqd.evaluate.compare import compare_frames
from paretohqd.pareto.indicators import hypervolume_batch

from .test_evaluate import staircase_area

OBJECTIVES = ("harmless", "helpful")


def cost(training, generation, scoring=10.0, key="scores-key", gpu=0.0):
    line = lambda wall: {"wall_seconds": wall, "gpu_seconds": wall * gpu, "stages": {}}  # noqa: E731
    scoring_line = {**line(scoring), "key": key}
    return {"training": line(training), "generation": line(generation), "scoring": scoring_line,
            "evaluation": line(1.0), "inputs": line(0.0), "method": line(training + generation),
            "total": line(training + generation + scoring + 1.0)}


def scores_frame(rewards, degenerate=None, prompts=None, objectives=OBJECTIVES):
    """``rewards``: (n_prompts, n_models, M) -> the rows of eval/scores.parquet, with a base model."""
    rewards = np.asarray(rewards, dtype=float)
    n, k, _ = rewards.shape
    prompts = prompts or [f"t{i}" for i in range(n)]
    degenerate = np.zeros((n, k), dtype=bool) if degenerate is None else np.asarray(degenerate, dtype=bool)
    rows = []
    for j in range(k):
        for i, prompt in enumerate(prompts):
            rows.append({"model": f"pref_{j:02d}", "prompt_id": prompt, "prompt": "q", "response": "a",
                         **dict(zip(objectives, rewards[i, j])), "degenerate": bool(degenerate[i, j])})
    for prompt in prompts:  # the base model is not on the front
        rows.append({"model": "base", "prompt_id": prompt, "prompt": "q", "response": "a",
                     **dict.fromkeys(objectives, 100.0), "degenerate": False})
    return pd.DataFrame(rows)


def metrics_of(method, rewards, seed=0, run_cost=None, objectives=OBJECTIVES, run_dir="run"):
    rewards = np.asarray(rewards, dtype=float)
    return {"method": method, "objectives": list(objectives), "seed": seed, "run_dir": run_dir,
            "num_test_prompts": rewards.shape[0], "cost": run_cost or cost(100.0, 50.0),
            "preferences": [{"model": f"pref_{j:02d}", "weights": None, "mean_rewards": rewards[:, j].mean(0).tolist()}
                            for j in range(rewards.shape[1])]}


def fake_run(root, name, method, rewards, degenerate=None, seed=0, run_cost=None, objectives=OBJECTIVES,
             prompts=None):
    run = root / name
    (run / "eval").mkdir(parents=True)
    metrics = metrics_of(method, rewards, seed, run_cost, objectives, str(run))
    metrics.pop("run_dir")
    (run / "eval" / "metrics.json").write_text(json.dumps(metrics))
    scores_frame(rewards, degenerate, prompts, objectives).to_parquet(run / "eval" / "scores.parquet")
    return str(run)


def constant(points, n=6):
    """Every prompt scores each model at its point: the bootstrap cannot move anything."""
    return np.repeat(np.asarray(points, dtype=float)[None], n, axis=0)


def test_compare_shares_one_reference_and_reports_intervals_and_cost(tmp_path, capsys):
    ours = fake_run(tmp_path, "a", "ParetoHqD", constant([[0.0, 4.0], [2.0, 3.0], [4.0, 0.0]]),
                    run_cost=cost(80.0, 20.0, scoring=30.0))
    degenerate = np.zeros((6, 2), dtype=bool)
    degenerate[:3, 0] = True  # 3 of 12 responses: 25%
    theirs = fake_run(tmp_path, "b", "RiC", constant([[1.0, 2.0], [3.0, 1.0]]), degenerate,
                      run_cost=cost(150.0, 100.0, scoring=30.0))
    assert main(["compare", ours, theirs, "--output", str(tmp_path / "cmp"), "--bootstrap", "200"]) == 0
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    field = result["hypervolume_field"]
    assert field == "hypervolume_minmax_union_worst"
    definition = result["hypervolume_definition"]
    assert definition["reference_point"]["raw"] == [0.0, 0.0]  # worst corner of the union of both runs
    assert definition["normalisation"]["high"] == [4.0, 4.0] and definition["normalisation"]["low"] == [0.0, 0.0]
    rows = {row["label"]: row for row in result["runs"]}
    scale = np.array([4.0, 4.0])
    hv_ours = staircase_area(np.array([[0, 4], [2, 3], [4, 0]]) / scale, np.zeros(2))
    hv_theirs = staircase_area(np.array([[1, 2], [3, 1]]) / scale, np.zeros(2))
    np.testing.assert_allclose(rows["ParetoHqD"][field], hv_ours)
    np.testing.assert_allclose(rows["RiC"][field], hv_theirs)
    np.testing.assert_allclose([rows["RiC"][f"{field}_ci_low"], rows["RiC"][f"{field}_ci_high"]], hv_theirs)
    assert rows["RiC"]["collapse_rate"] == 0.25
    assert 0.0 <= rows["RiC"]["collapse_rate_ci_low"] < 0.25 < rows["RiC"]["collapse_rate_ci_high"] <= 0.5
    assert rows["RiC"]["p_paretohqd_higher"] == 1.0 and rows["ParetoHqD"]["p_paretohqd_higher"] is None
    np.testing.assert_allclose(rows["RiC"]["hypervolume_vs_paretohqd"], hv_theirs / hv_ours)
    # The method's cost is training + generation; the shared scoring is on its own line, in neither.
    assert rows["RiC"]["method_wall_seconds"] == 250.0 and rows["RiC"]["scoring_wall_seconds"] == 30.0
    np.testing.assert_allclose(rows["RiC"]["time_vs_paretohqd"], 2.5)
    assert result["scoring"] == [{"key": "scores-key", "runs": ["ParetoHqD", "RiC"], "wall_seconds": 30.0,
                                  "gpu_seconds": 0.0, "wall_seconds_range": [30.0, 30.0]}]
    assert result["bootstrap"]["replicates"] == 200 and result["bootstrap"]["seed"] == 0
    out = capsys.readouterr().out
    assert "P(ParetoHqD > run)" in out and "reference point (0, 0) raw" in out and "train+gen s" in out
    assert "scoring of the offline data, shared by ParetoHqD, RiC" in out
    markdown = (tmp_path / "cmp" / "compare.md").read_text()
    assert ("| run | seed | models | prompts | HV [95% CI] | HV union (secondary) | collapse [95% CI] | "
            "P(ParetoHqD > run) |") in markdown
    assert "| RiC | 0 | 2 | 6 | 0.2500 [0.2500, 0.2500] | " in markdown
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert {f"{field}_ci_low", "collapse_rate_ci_high", "p_paretohqd_higher", "training_wall_seconds",
            "generation_wall_seconds", "scoring_wall_seconds"} <= set(table.columns)
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 1000


def oracle_replicates(rewards, degenerate, indices, low, high):
    """The bootstrap by hand: a plain loop over replicates, models and drawn prompts, then a staircase."""
    hvs, collapses = [], []
    for draw in indices:
        points, bad = [], 0.0
        for j in range(rewards.shape[1]):
            total = [0.0, 0.0]
            for p in draw:
                total = [total[0] + rewards[p, j, 0], total[1] + rewards[p, j, 1]]
                bad += degenerate[p, j]
            points.append([total[0] / len(draw), total[1] / len(draw)])
        z = (np.array(points) - low) / (high - low)
        hvs.append(staircase_area(z, np.zeros(2)))
        collapses.append(bad / (len(draw) * rewards.shape[1]))
    return np.array(hvs), np.array(collapses)


def test_bootstrap_replicates_match_a_plain_loop():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(9, 3, 2)), rng.normal(size=(9, 2, 2)) - 0.2
    bad_a, bad_b = rng.random((9, 3)) < 0.3, rng.random((9, 2)) < 0.5
    runs = [metrics_of("ParetoHqD", a, run_dir="x"), metrics_of("RiC", b, run_dir="y")]
    result, replicates = compare_frames(runs, [scores_frame(a, bad_a), scores_frame(b, bad_b)], bootstrap=6,
                                        bootstrap_seed=3)
    union = np.vstack([a.mean(0), b.mean(0)])
    low, high = union.min(0), union.max(0)
    indices = bootstrap_indices(9, 6, 3)
    # the parquet's prompt ids t0..t8 sort as strings, which is the order of the arrays here
    for label, rewards, bad in (("ParetoHqD", a, bad_a), ("RiC", b, bad_b)):
        hv, collapse = oracle_replicates(rewards, bad, indices, low, high)
        np.testing.assert_allclose(replicates[label]["hypervolume"], hv, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(replicates[label]["collapse_rate"], collapse, rtol=1e-12)
        row = next(r for r in result["runs"] if r["label"] == label)
        np.testing.assert_allclose([row["hypervolume_minmax_union_worst_ci_low"],
                                    row["hypervolume_minmax_union_worst_ci_high"]], np.percentile(hv, [2.5, 97.5]))
        np.testing.assert_allclose(row["collapse_rate_ci_low"], np.percentile(collapse, 2.5))
    hv_a, _ = oracle_replicates(a, bad_a, indices, low, high)
    hv_b, _ = oracle_replicates(b, bad_b, indices, low, high)
    p = np.mean([1.0 if x > y else 0.5 if x == y else 0.0 for x, y in zip(hv_a, hv_b)])
    assert next(m for m in result["methods"] if m["method"] == "RiC")["p_paretohqd_higher"] == pytest.approx(p)


def test_a_dominating_run_wins_every_replicate_and_identical_runs_tie():
    rng = np.random.default_rng(0)
    theirs = rng.uniform(0, 1, (15, 4, 2))
    runs = [metrics_of("ParetoHqD", theirs + 1.0, run_dir="x"), metrics_of("RiC", theirs, run_dir="y"),
            metrics_of("SFT", theirs + 1.0, run_dir="z")]
    result, _ = compare_frames(runs, [scores_frame(theirs + 1.0), scores_frame(theirs), scores_frame(theirs + 1.0)],
                               bootstrap=300)
    p = {m["method"]: m.get("p_paretohqd_higher") for m in result["methods"]}
    assert p == {"ParetoHqD": None, "RiC": 1.0, "SFT": 0.5}  # the same scores on the same draws: every one a tie


def oracle_two_level(hv_ours, hv_theirs, seed):
    """The two-level bootstrap by hand: per replicate, each method's seeds drawn with replacement (the draws
    ``compare`` makes), their replicate hypervolumes averaged, the averages compared."""
    draws = {}
    for stream, hv in ((1, hv_ours), (2, hv_theirs)):
        n, B = hv.shape
        drawn = np.random.default_rng([seed, 1_000 + stream]).integers(0, n, size=(B, n))
        draws[stream] = [sum(hv[drawn[b, i], b] for i in range(n)) / n for b in range(B)]
    wins = [1.0 if x > y else 0.5 if x == y else 0.0 for x, y in zip(draws[1], draws[2])]
    return sum(wins) / len(wins)


def test_seeds_are_aggregated_and_paired_by_a_two_level_bootstrap():
    rng = np.random.default_rng(1)
    data = {(m, s): rng.uniform(0, 1, (8, 3, 2)) + (0.3 if m == "ParetoHqD" else 0.0)
            for m in ("ParetoHqD", "RiC", "SFT") for s in (0, 1, 2)}
    runs, frames = [], []
    for (method, seed), rewards in data.items():
        runs.append(metrics_of(method, rewards, seed=seed, run_dir=f"runs/{method}-{seed}",
                               run_cost=cost(100.0 + 10 * seed, 50.0)))
        frames.append(scores_frame(rewards))
    result, replicates = compare_frames(runs, frames, bootstrap=100, bootstrap_seed=4)
    methods = {m["method"]: m for m in result["methods"]}
    rows = {(r["method"], r["seed"]): r for r in result["runs"]}
    field = result["hypervolume_field"]
    ours = [rows[("ParetoHqD", s)][field] for s in (0, 1, 2)]
    assert methods["ParetoHqD"][f"{field}_mean"] == pytest.approx(np.mean(ours))
    assert methods["ParetoHqD"][f"{field}_sd"] == pytest.approx(np.std(ours, ddof=1))
    assert methods["RiC"]["seeds"] == [0, 1, 2] and methods["RiC"]["method_wall_seconds_mean"] == 160.0
    hv = {key: replicates[row["label"]]["hypervolume"] for key, row in rows.items()}
    for method in ("RiC", "SFT"):
        expected = oracle_two_level(np.array([hv[("ParetoHqD", s)] for s in (0, 1, 2)]),
                                    np.array([hv[(method, s)] for s in (0, 1, 2)]), 4)
        assert methods[method]["p_paretohqd_higher"] == pytest.approx(expected)
        assert methods[method]["pairing"].startswith("two-level bootstrap (3 x 3 seeds")
    text = compare_frames(runs, frames, bootstrap=10)[0]
    from paretohqd.evaluate.compare_tables import format_comparison

    assert "HV mean ± sd" in format_comparison(text, markdown=True) and "two-level" in format_comparison(text)


def test_seed_variance_is_in_the_test():
    """One lucky seed does not make a method win: with ParetoHqD's seeds far above and far below RiC's on every
    prompt, the prompt bootstrap alone would be decisive either way per seed; resampling seeds is not."""
    rng = np.random.default_rng(3)
    base = rng.uniform(0.2, 0.4, (20, 3, 2))
    runs, frames = [], []
    for seed, shift in enumerate((0.5, -0.15, -0.15)):
        runs.append(metrics_of("ParetoHqD", base + shift, seed=seed, run_dir=f"p{seed}"))
        frames.append(scores_frame(base + shift))
    for seed in range(3):
        runs.append(metrics_of("RiC", base, seed=seed, run_dir=f"r{seed}"))
        frames.append(scores_frame(base))
    result, _ = compare_frames(runs, frames, bootstrap=400, reference_point=[0.0, 0.0])
    ric = next(m for m in result["methods"] if m["method"] == "RiC")
    assert 0.2 < ric["p_paretohqd_higher"] < 0.9
    low, high = ric["difference_ci"]
    assert low < 0 < high


def test_runs_on_other_test_prompts_get_intervals_but_no_pairing():
    rng = np.random.default_rng(2)
    a, b = rng.uniform(0, 1, (6, 2, 2)), rng.uniform(0, 1, (6, 2, 2))
    runs = [metrics_of("ParetoHqD", a, run_dir="x"), metrics_of("RiC", b, run_dir="y")]
    frames = [scores_frame(a), scores_frame(b, prompts=[f"u{i}" for i in range(6)])]
    result, _ = compare_frames(runs, frames, bootstrap=50)
    ric = next(m for m in result["methods"] if m["method"] == "RiC")
    assert ric["pairing"] == "none" and ric["p_paretohqd_higher"] is None
    assert any("other test prompt ids than ParetoHqD, so they are not paired" in note for note in result["notes"])
    assert all(row["hypervolume_minmax_union_worst_ci_low"] <= row["hypervolume_minmax_union_worst"]
               <= row["hypervolume_minmax_union_worst_ci_high"] for row in result["runs"])


def test_a_raw_reference_point_gives_raw_hypervolumes(tmp_path):
    ours = fake_run(tmp_path, "a", "ParetoHqD", constant([[1.0, 3.0], [2.0, 1.0]]))
    assert main(["compare", ours, "--output", str(tmp_path / "cmp"), "--reference_point", "0", "0",
                 "--bootstrap", "20", "--bootstrap_seed", "4"]) == 0
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert result["hypervolume_field"] == "hypervolume_raw_ref"
    assert result["hypervolume_definition"]["normalisation"] == {"method": "none"}
    assert result["runs"][0]["hypervolume_raw_ref"] == pytest.approx(4.0)  # 1 x 3 + 1 x 1
    assert result["bootstrap"]["seed"] == 4


def test_hypervolume_batch_matches_moocore():
    rng = np.random.default_rng(5)
    fronts = rng.normal(size=(40, 6, 2))
    fronts[0, :, :] = -5.0  # nothing above the reference
    fronts[1, 1] = fronts[1, 0]  # a duplicate
    ref = np.array([-1.0, -1.5])
    expected = [moocore.hypervolume(f[np.all(f > ref, axis=1)], ref=ref, maximise=True)
                if np.all(f > ref, axis=1).any() else 0.0 for f in fronts]
    np.testing.assert_allclose(hypervolume_batch(fronts, ref), expected, rtol=1e-12, atol=1e-12)
    three = rng.normal(size=(3, 5, 3))
    np.testing.assert_allclose(hypervolume_batch(three, [-2, -2, -2]),
                               [moocore.hypervolume(f, ref=[-2, -2, -2], maximise=True) for f in three])


def test_compare_refuses_mismatched_or_missing_runs(tmp_path, capsys):
    first = fake_run(tmp_path, "a", "ParetoHqD", constant([[0.0, 1.0]]))
    other = fake_run(tmp_path, "b", "SFT", constant([[0.0, 1.0]]), objectives=("faithful", "concise"))
    assert main(["compare", first, other, "--output", str(tmp_path / "cmp")]) == 2
    assert "only runs on the same objectives" in capsys.readouterr().err
    assert main(["compare", first, str(tmp_path / "nothing")]) == 2
    assert "has no eval/metrics.json" in capsys.readouterr().err
    older = fake_run(tmp_path, "c", "RiC", constant([[0.0, 1.0]]))
    (tmp_path / "c" / "eval" / "scores.parquet").unlink()
    assert main(["compare", first, older, "--output", str(tmp_path / "cmp")]) == 2
    err = capsys.readouterr().err
    assert "eval/scores.parquet is missing" in err and str(tmp_path / "c") in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as stopped:  # argparse's own refusal, in one sentence
        main(["compare", first, "--output", str(tmp_path / "cmp"), "--bootstrap", "0"])
    assert stopped.value.code == 2
    assert "the bootstrap count must be a whole number from 1 to 100,000" in capsys.readouterr().err


def test_incomplete_scores_are_one_sentence():
    rewards = constant([[0.0, 1.0], [1.0, 0.0]])
    frame = scores_frame(rewards).iloc[1:]  # pref_00 lost its answer to one prompt
    with pytest.raises(UserError, match="model 'pref_00' has scores on 5 of the 6 test prompts"):
        compare_frames([metrics_of("ParetoHqD", rewards, run_dir="x")], [frame], bootstrap=5)


def test_labels_name_the_runs_and_ablations_of_one_method_pair_with_the_first():
    rng = np.random.default_rng(1)
    theirs = rng.uniform(0, 1, (12, 3, 2))
    runs = [metrics_of("ParetoHqD", theirs + 1.0, run_dir="a/seed_0"),
            metrics_of("ParetoHqD", theirs, run_dir="b/seed_0")]
    frames = [scores_frame(theirs + 1.0), scores_frame(theirs)]
    result, _ = compare_frames(runs, frames, bootstrap=50, labels=["both stages", "stage 1 only"])
    assert [row["label"] for row in result["runs"]] == ["both stages", "stage 1 only"]
    p = {m["method"]: m.get("p_paretohqd_higher") for m in result["methods"]}
    assert p == {"both stages": None, "stage 1 only": 1.0}  # same seed: each its own row, paired with the first
    for labels, message in ((["one"], "2 runs: give one per run"), (["x", "x"], "names two runs 'x'")):
        with pytest.raises(UserError, match=message):
            compare_frames(runs, frames, bootstrap=5, labels=labels)


def test_the_declared_reference_point_makes_a_number_that_does_not_move_with_the_company():
    """Each run declared the same reference point before training: the comparison measures above it, so a run's
    hypervolume is the same in every table; the union's worst corner (secondary) moves."""
    rng = np.random.default_rng(5)
    fronts = {name: rng.uniform(0, 1, (7, 3, 2)) + shift for name, shift in (("ParetoHqD", 0.2), ("RiC", 0.0),
                                                                             ("SFT", -0.5))}
    declared = {"raw": [-1.0, -1.0], "rule": "the 0.1 quantile of each objective's offline scores"}

    def table(names):
        runs = [{**metrics_of(n, fronts[n], run_dir=n), "reference_point": declared} for n in names]
        return {row["label"]: row for row in compare_frames(runs, [scores_frame(fronts[n]) for n in names],
                                                            bootstrap=20)[0]["runs"]}

    alone, with_sft = table(["ParetoHqD", "RiC"]), table(["ParetoHqD", "RiC", "SFT"])
    field = "hypervolume_raw_ref"
    expected = staircase_area(fronts["ParetoHqD"].mean(0) + 1.0, np.zeros(2))
    assert alone["ParetoHqD"][field] == pytest.approx(expected) == with_sft["ParetoHqD"][field]
    union = "hypervolume_minmax_union_worst"
    assert alone["ParetoHqD"][union] != with_sft["ParetoHqD"][union]


def test_runs_that_declared_different_reference_points_are_refused():
    rewards = np.random.default_rng(6).uniform(0, 1, (4, 2, 2))
    runs = [{**metrics_of("ParetoHqD", rewards, run_dir="a"), "reference_point": {"raw": [0.0, 0.0]}},
            {**metrics_of("RiC", rewards, run_dir="b"), "reference_point": {"raw": [0.0, -1.0]}}]
    with pytest.raises(UserError, match=r"b declared the reference point \(0, -1\) but a declared \(0, 0\)"):
        compare_frames(runs, [scores_frame(rewards), scores_frame(rewards)], bootstrap=5)
    result, _ = compare_frames(runs, [scores_frame(rewards), scores_frame(rewards)], bootstrap=5,
                               reference_point=[-1.0, -1.0])
    assert result["reference_point_declared_by"] == "--reference_point"
