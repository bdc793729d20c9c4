import json

import numpy as np
import pytest

from paretohqd.evaluate.collapse import CollapseDetector
from paretohqd.evaluate.metrics import front_hypervolume
from paretohqd.pipeline import RunDir, Runner, Unit
from paretohqd.pipeline.evaluate import cost_summary
from paretohqd.policy import clean_response


def test_collapse_detector_defaults():
    detector = CollapseDetector()
    healthy = "You can fix a squeaky hinge with a few drops of oil on the pin."
    assert not detector.reasons(healthy)
    assert detector.reasons("Sure thing.") == ["fewer than 5 tokens"]
    assert "a 3-gram repeated 3 times" in detector.reasons("I am here. I am here. I am here. Okay then.")
    looping = " ".join(["very good"] * 15)
    assert any("distinct-2" in reason for reason in detector.reasons(looping))
    assert detector.rate([healthy, "No.", healthy, healthy]) == 0.25


def test_clean_response_cuts_at_the_next_turn():
    assert clean_response(" Sure, here it is.\n\nHuman: and more?\nAssistant: yes") == "Sure, here it is."
    assert clean_response("Fine.<|im_end|>junk") == "Fine."
    assert clean_response("Assistant: hello") == ""


def staircase_area(points, reference):
    """Brute-force 2-D hypervolume (maximising): sweep the points by the first objective."""
    kept = points[np.all(points > reference, axis=1)]
    area, best_y = 0.0, reference[1]
    for x, y in sorted(kept.tolist(), key=lambda p: -p[0]):
        if y > best_y:
            area += (x - reference[0]) * (y - best_y)
            best_y = y
    return area


def test_front_hypervolume_records_reference_and_beats_base():
    aligned = np.array([[1.0, 4.0], [2.0, 3.0], [3.0, 1.5]])
    base = np.array([0.5, 1.0])
    result = front_hypervolume(aligned, base)
    assert "hypervolume" not in result and "hypervolume_raw_ref" not in result  # no unnamed, no unasked number
    definition = result["hypervolume_definitions"]["hypervolume_minmax_run_worst"]
    low, high = np.array(definition["normalisation"]["low"]), np.array(definition["normalisation"]["high"])
    np.testing.assert_allclose(low, [0.5, 1.0])
    np.testing.assert_allclose(high, [3.0, 4.0])
    assert definition["reference_point"]["raw"] == [0.5, 1.0] and definition["reference_point"]["rule"] == \
        "worst corner"
    assert "aligned models' and base model's points" in definition["normalisation"]["over"]
    z = (aligned - low) / (high - low)
    np.testing.assert_allclose(result["hypervolume_minmax_run_worst"], staircase_area(z, np.zeros(2)))
    assert result["base_hypervolume_minmax_run_worst"] == 0.0  # the base is the worst corner here
    np.testing.assert_allclose(result["hypervolume_minmax_run_base"], staircase_area(z, (base - low) / (high - low)))
    on_base = result["hypervolume_definitions"]["hypervolume_minmax_run_base"]
    assert on_base["reference_point"]["raw"] == [0.5, 1.0] and on_base["normalisation"]["low"] == [0.5, 1.0]


def test_front_hypervolume_with_a_raw_reference_point_is_in_raw_units():
    aligned = np.array([[1.0, 4.0], [2.0, 3.0], [3.0, 1.5]])
    result = front_hypervolume(aligned, None, reference=[0.0, 0.0])
    np.testing.assert_allclose(result["hypervolume_raw_ref"], staircase_area(aligned, np.zeros(2)))
    raw = result["hypervolume_definitions"]["hypervolume_raw_ref"]
    assert raw["normalisation"] == {"method": "none"} and raw["reference_point"]["raw"] == [0.0, 0.0]
    assert "hypervolume_minmax_run_worst" in result and "hypervolume_minmax_run_base" not in result


def write_manifest(run, units):
    run.mkdir(parents=True, exist_ok=True)
    (run / "manifest.json").write_text(json.dumps({"units": units, "stages": {}}))


def test_scoring_cost_is_the_same_for_every_run_sharing_a_cache(tmp_path):
    cache = tmp_path / "cache" / "harmless"
    cache.mkdir(parents=True)
    shard = str(cache / "k1.npy")
    (cache / "k1.npy").write_bytes(b"x")
    (cache / "k1.npy.cost.json").write_text(json.dumps({"wall_seconds": 40.0, "gpu_seconds": 40.0}))
    (cache / "k2.npy").write_bytes(b"x")  # filled by an older version: no record
    units = [{"name": "inputs/samples", "kind": "input", "stage": "score", "key": "i", "outputs": []},
             {"name": "score/harmless/000000", "kind": "score_shard", "stage": "score", "key": "k1",
              "outputs": [shard]},
             {"name": "score/harmless/000001", "kind": "score_shard", "stage": "score", "key": "k2",
              "outputs": [str(cache / "k2.npy")]},
             {"name": "score", "kind": "score", "stage": "score", "key": "merged", "outputs": []},
             {"name": "select/pool", "kind": "select_pool", "stage": "select", "key": "p", "outputs": []},
             {"name": "train/stage1/pref_00", "kind": "sft", "stage": "train_stage1", "key": "t", "outputs": []},
             {"name": "stage2/generate/pref_00", "kind": "generate", "stage": "stage2", "key": "g2", "outputs": []},
             {"name": "generate/pref_00", "kind": "generate", "stage": "generate", "key": "g", "outputs": []}]
    entry = lambda stage, wall, gpu=0.0: {"stage": stage, "wall_seconds": wall, "gpu_seconds": gpu,  # noqa: E731
                                          "status": "done"}
    # Run a computed the shard (and recorded it); run b found it cached: no entry of its own.
    write_manifest(tmp_path / "a", {"inputs/samples": entry("score", 1.0),
                                    "score/harmless/000000": entry("score", 40.0),
                                    "score": entry("score", 2.0), "select/pool": entry("select", 3.0),
                                    "train/stage1/pref_00": entry("train_stage1", 100.0, 100.0),
                                    "stage2/generate/pref_00": entry("stage2", 7.0),
                                    "generate/pref_00": entry("generate", 11.0)})
    write_manifest(tmp_path / "b", {"inputs/samples": entry("score", 1.0), "score": entry("score", 2.0),
                                    "select/pool": entry("select", 5.0),
                                    "train/stage1/pref_00": entry("train_stage1", 200.0),
                                    "stage2/generate/pref_00": entry("stage2", 9.0),
                                    "generate/pref_00": entry("generate", 13.0)})
    evaluation = [{"name": "evaluate", "kind": "evaluate", "stage": "evaluate", "wall_seconds": 4.0,
                   "gpu_seconds": 0.0}]
    a, wall_a, gpu_a = cost_summary(tmp_path / "a", units, evaluation)
    b, _, _ = cost_summary(tmp_path / "b", units, evaluation)
    for cost, answers in ((a, 11.0), (b, 13.0)):
        assert cost["scoring"]["wall_seconds"] == 42.0 and cost["scoring"]["gpu_seconds"] == 40.0
        assert cost["scoring"]["unrecorded_units"] == 1 and cost["scoring"]["key"] == "merged"
        # answering the held-out prompts is evaluation (the same protocol for every method), not the method's
        assert cost["evaluation"]["wall_seconds"] == 4.0 + answers and cost["inputs"]["wall_seconds"] == 1.0
    assert a["scoring"]["computed_here"] == 2 and b["scoring"]["computed_here"] == 1
    assert a["training"]["wall_seconds"] == 103.0 and a["training"]["gpu_seconds"] == 100.0
    assert a["generation"]["wall_seconds"] == 7.0 and a["generation"]["stages"] == {
        "stage2": {"wall_seconds": 7.0, "gpu_seconds": 0.0}}
    assert a["method"] == {"wall_seconds": 110.0, "gpu_seconds": 100.0}
    assert b["method"]["wall_seconds"] == 214.0
    assert wall_a == {"score": 43.0, "select": 3.0, "train_stage1": 100.0, "stage2": 7.0, "generate": 11.0,
                      "evaluate": 4.0, "total": 168.0}
    assert a["total"]["wall_seconds"] == 168.0 and gpu_a["total"] == 140.0


def make_shard(ctx):
    ctx.output.parent.mkdir(parents=True, exist_ok=True)
    ATTEMPTS.append(ctx.name)
    if len(ATTEMPTS) == 1:
        raise RuntimeError("the first attempt broke")
    ctx.output.write_text("scores")


ATTEMPTS: list = []


def test_runner_records_attempts_devices_and_a_cost_record_beside_cached_outputs(tmp_path):
    ATTEMPTS.clear()
    cache = tmp_path / "shared_cache"
    shard = Unit(name="score/x/000000", kind="score_shard", stage="score", command="score", action=make_shard,
                 outputs=(f"{cache}/x/{{key}}.npy",), settings={"objective": "x"}, content_addressed=True)
    run = RunDir(tmp_path / "run")
    with pytest.raises(RuntimeError):
        Runner(run, log=lambda *_: None).execute([shard])
    Runner(run, log=lambda *_: None).execute([shard])
    entry = json.loads((tmp_path / "run" / "manifest.json").read_text())["units"]["score/x/000000"]
    assert entry["attempts"] == 2 and entry["cuda_devices"] == 0 and entry["gpu_seconds"] == 0.0
    record = json.loads((cache / "x" / f"{shard.key}.npy.cost.json").read_text())
    assert record["wall_seconds"] == entry["wall_seconds"] > 0 and record["attempts"] == 2
    assert record["key"] == shard.key and record["cuda_devices"] == 0
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"]["score"]["gpu_seconds"] == 0.0


def test_gpu_seconds_count_only_the_devices_a_unit_allocated_on(tmp_path, monkeypatch):
    """No GPU here: torch.cuda is told that CUDA starts inside the second unit, on 2 devices of which it uses one;
    the third unit runs on the CPU after it (CUDA still up: before, every unit from then on was charged both
    devices, env.json's CUDA start charged them from the first), the fourth uses both."""
    import torch

    state = {"initialised": False, "allocations": [0, 0]}
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: state["initialised"])
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "memory_stats",
                        lambda device: {"allocation.all.allocated": state["allocations"][device]})

    def on_cpu(ctx):
        ctx.output.parent.mkdir(parents=True, exist_ok=True)
        ctx.output.write_text("cpu")

    def on(*devices):
        def action(ctx):
            state["initialised"] = True
            for device in devices:
                state["allocations"][device] += 3
            on_cpu(ctx)
        return action

    units = {}
    for name, action in (("a", on_cpu), ("b", on(1)), ("c", on_cpu), ("d", on(0, 1))):
        units[name] = Unit(name=name, kind="toy", stage="toy", command="run", action=action,
                           outputs=(f"out/{name}",), upstream={"up": units[chr(ord(name) - 1)]} if units else {})
    Runner(RunDir(tmp_path), log=lambda *_: None).execute([units["d"]])
    recorded = json.loads((tmp_path / "manifest.json").read_text())["units"]
    assert [recorded[name]["cuda_devices"] for name in "abcd"] == [0, 1, 0, 2]
    assert recorded["c"]["gpu_seconds"] == 0.0
    assert recorded["d"]["gpu_seconds"] == pytest.approx(2 * recorded["d"]["wall_seconds"])


def test_each_model_is_paired_with_the_base_model_prompt_by_prompt():
    """Differences with the base model on the same prompts, along each model's own preference, with a bootstrap
    interval over prompts, against a plain loop."""
    import pandas as pd

    from paretohqd.evaluate.bootstrap import bootstrap_indices
    from paretohqd.evaluate.metrics import summarise

    rng = np.random.default_rng(11)
    names, n = ["harmless", "helpful"], 12
    rewards = {"base": rng.normal(size=(n, 2)), "pref_00": [*rng.normal(size=(n, 2)), 0.0, 0.8],
               "pref_01": [*rng.normal(size=(n, 2)), 0.8, -0.2]}
    weights = {"pref_00": [0.0, 1.0], "pref_01": [0.75, 0.25]}
    rows = [{"model": m, "prompt_id": f"t{i}", "prompt": "q", "response": "a b c d e f", "degenerate": False,
             "truncated": i % 3 == 0, **dict(zip(names, r[i]))} for m, r in rewards.items() for i in range(n)]
    models = [{"name": m, "weights": w} for m, w in weights.items()] + [{"name": "base", "weights": None}]
    scales = [2.0, 0.5]
    _, metrics = summarise(pd.DataFrame(rows), models, names, CollapseDetector(), [-3.0, -3.0], scales,
                           bootstrap=50, bootstrap_seed=2)
    order = sorted(range(n), key=lambda i: f"t{i}")  # prompt ids sort as text
    draws = bootstrap_indices(n, 50, 2)
    for entry in metrics["vs_base"]:
        w = weights[entry["model"]]
        diff = [[rewards[entry["model"]][i][j] - rewards["base"][i][j] for j in range(2)] for i in order]
        along = [sum(w[j] * d[j] / scales[j] for j in range(2)) for d in diff]
        assert entry["along_preference"] == pytest.approx(sum(along) / n)
        replicate = [sum(along[p] for p in draw) / n for draw in draws]
        assert entry["along_preference_ci"] == pytest.approx(list(np.percentile(replicate, [2.5, 97.5])))
        assert entry["difference"] == pytest.approx(np.mean(diff, axis=0).tolist())
    assert metrics["truncated_share"] == {"pref_00": pytest.approx(4 / 12), "pref_01": pytest.approx(4 / 12),
                                          "base": pytest.approx(4 / 12)}
    assert metrics["base_hypervolume_raw_ref"] == pytest.approx(
        staircase_area(np.array([rewards["base"].mean(0)]), np.array([-3.0, -3.0])))
