"""Serving any preference of a finished run: which trained models answer, with what mix (against brute force), the
exact LoRA combination (against the adapters' own weights), the evaluation of served preferences, the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import paretohqd
from paretohqd.errors import UserError
from paretohqd.pareto import das_dennis, linear_grid
from paretohqd.pareto.interpolation import cell_midpoints, enclosing_mix

from .conftest import torch_threads
from .test_hostile import cli
from .test_pipeline import write_run_config

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------ the mix itself


@pytest.mark.parametrize("seed", range(20))
def test_two_objectives_mix_of_the_two_neighbours(seed):
    rng = np.random.default_rng(seed)
    first = np.unique(np.r_[0.0, 1.0, rng.random(int(rng.integers(0, 8)))])
    trained = np.c_[first, 1 - first][rng.permutation(len(first))]
    w = rng.random()
    indices, mix = enclosing_mix(trained, [w, 1 - w])
    assert np.isclose(sum(mix), 1.0) and all(c > 0 for c in mix) and len(indices) <= 2
    assert np.allclose(np.asarray(mix) @ trained[indices], [w, 1 - w])
    # brute force: the neighbours are the closest trained first weights below and above w
    below, above = first[first <= w].max(), first[first >= w].min()
    assert set(np.round(trained[indices, 0], 12)) <= {round(below, 12), round(above, 12)}


@pytest.mark.parametrize("m,partitions", [(3, 4), (3, 2), (4, 3)])
def test_m_objectives_mix_reconstructs_the_preference(m, partitions):
    trained = das_dennis(partitions, m)
    rng = np.random.default_rng(m * 10 + partitions)
    for w in rng.dirichlet(np.ones(m), size=40):
        indices, mix = enclosing_mix(trained, w)
        assert len(indices) <= m and np.isclose(sum(mix), 1.0) and min(mix) > 0
        assert np.allclose(np.asarray(mix) @ trained[indices], w, atol=1e-9)
        # the vertices enclose it tightly: none is farther than one grid step in any coordinate
        assert np.abs(trained[indices] - w).max() <= 1.0 / partitions + 1e-9


def test_a_trained_preference_is_itself_and_scale_does_not_matter():
    trained = linear_grid(5)
    index = int(np.flatnonzero(np.isclose(trained[:, 0], 0.75))[0])
    assert enclosing_mix(trained, [0.75, 0.25]) == ([index], [1.0])
    assert enclosing_mix(trained * 3, [3, 1]) == enclosing_mix(trained, [0.75, 0.25])


def test_outside_the_trained_hull_is_refused():
    with pytest.raises(ValueError, match="outside"):
        enclosing_mix([[0.8, 0.2], [0.5, 0.5]], [0.1, 0.9])
    with pytest.raises(ValueError, match="outside"):
        enclosing_mix([[1, 0, 0], [0, 1, 0], [0.5, 0.5, 0], [0.4, 0.4, 0.2]], [0.1, 0.1, 0.8])


def test_cell_midpoints():
    assert np.allclose(cell_midpoints(linear_grid(3)), [[0.25, 0.75], [0.75, 0.25]])
    centres = cell_midpoints(das_dennis(2, 3))
    assert len(centres) == 4 and np.allclose(centres.sum(axis=1), 1)
    for centre in centres:  # each centre is served from exactly its cell's three corners
        indices, mix = enclosing_mix(das_dennis(2, 3), centre)
        assert len(indices) == 3 and np.allclose(mix, 1 / 3)
    assert cell_midpoints([[1.0]]).shape == (0, 1)


# --------------------------------------------------------------------------------------- a finished tiny run


@pytest.fixture(scope="module")
def finished_run(served_run):
    """(the shared served run, its metrics): 3 preferences, stage 1 only, its two midpoints served and evaluated."""
    return served_run, json.loads((served_run / "eval" / "metrics.json").read_text())


def test_served_preferences_are_evaluated_apart_from_the_trained_front(finished_run):
    run, metrics = finished_run
    assert [p["model"] for p in metrics["preferences"]] == ["pref_00", "pref_01", "pref_02"]
    served = {s["model"]: s for s in metrics["served"]}
    assert set(served) == {"served_00", "served_01"}
    assert served["served_00"]["weights"] == [0.25, 0.75] and served["served_00"]["mode"] == "interpolate"
    assert sorted(m["model"] for m in served["served_00"]["from"]) == ["pref_01", "pref_02"]
    assert all(np.isclose(m["weight"], 0.5) for s in served.values() for m in s["from"])
    assert metrics["hypervolume_minmax_run_worst_with_served"] >= metrics["hypervolume_minmax_run_worst"] - 1e-12
    for entry in served.values():  # the flags are what the points say
        neighbours = np.array([p["mean_rewards"] for p in metrics["preferences"]
                               if p["model"] in {m["model"] for m in entry["from"]}])
        point = np.array(entry["mean_rewards"])
        assert entry["between_neighbours"] == bool(np.all((point >= neighbours.min(0)) & (point <= neighbours.max(0))))
        trained = np.array([p["mean_rewards"] for p in metrics["preferences"]])
        dominated = bool(np.any(np.all(trained >= point, axis=1) & np.any(trained > point, axis=1)))
        assert entry["dominated_by_trained"] == dominated
        assert entry["hypervolume_gain"] >= -1e-12
    table = pd.read_csv(run / "eval" / "per_preference.csv")
    assert set(table["model"]) == {"pref_00", "pref_01", "pref_02", "served_00", "served_01", "base"}


def test_nearest_serves_the_closest_trained_model(finished_run):
    run, _ = finished_run
    served = paretohqd.load_policy(run, [0.3, 0.7])
    assert served.served.name == "pref_01" and served.served.mode == "nearest"
    assert served.served.model_folders == [run / "models" / "pref_01" / "stage1"]
    model, tokenizer = served  # the pair the issue names
    assert model is served.model and tokenizer.eos_token == "<|im_end|>"


def test_interpolation_at_a_trained_preference_is_that_model(finished_run):
    run, _ = finished_run
    alone = paretohqd.load_policy(run, [1, 1], mode="interpolate")
    nearest = paretohqd.load_policy(run, [0.5, 0.5])
    assert alone.served.name == nearest.served.name == "pref_01" and alone.served.mix is None
    ours, theirs = alone.model.state_dict(), nearest.model.state_dict()
    assert all(np.array_equal(ours[k].numpy(), theirs[k].numpy()) for k in ours)


def test_interpolation_is_the_exact_weighted_sum_of_the_adapters(finished_run):
    """W = W0 + sum_i c_i (alpha / r) B_i A_i, computed here from the adapters' own files."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    run, _ = finished_run
    served = paretohqd.load_policy(run, [0.3, 0.7], mode="interpolate")
    mix = dict(zip([m["model"] for m in served.served.made_from], served.served.mix))
    assert set(mix) == {"pref_01", "pref_02"} and np.isclose(mix["pref_01"], 0.6)
    config = paretohqd.load_config(str(run / "config.resolved.yaml"))
    base = AutoModelForCausalLM.from_pretrained(config.model.name_or_path, dtype=torch.float32).state_dict()
    expected = {}
    for name, share in mix.items():
        folder = run / "models" / name / "stage1"
        adapter = load_file(str(folder / "adapter_model.safetensors"))
        settings = json.loads((folder / "adapter_config.json").read_text())
        scale = settings["lora_alpha"] / settings["r"]
        for key, a in adapter.items():
            if ".lora_A." not in key:
                continue
            target = key.split("base_model.model.", 1)[1].replace(".lora_A.weight", ".weight")
            b = adapter[key.replace(".lora_A.", ".lora_B.")]
            expected[target] = expected.get(target, base[target].clone()) + share * scale * (b @ a)
    merged = served.model.state_dict()
    assert expected and all(torch.allclose(merged[k], v, atol=1e-6) for k, v in expected.items())
    untouched = [k for k in merged if k not in expected]
    assert all(torch.equal(merged[k], base[k]) for k in untouched)
    # and it differs from both neighbours: a real combination, not one of them
    nearest = paretohqd.load_policy(run, [0.5, 0.5]).model.state_dict()
    assert any(not torch.allclose(merged[k], nearest[k]) for k in expected)


def test_served_generation_is_what_the_evaluation_answered(finished_run):
    """The evaluation's served_00 generations come from the same model load_policy serves, with the same seed."""
    run, metrics = finished_run
    config = paretohqd.load_config(str(run / "config.resolved.yaml"))
    answered = pd.read_json(run / "generations" / "served_00.jsonl", lines=True)
    served = paretohqd.load_policy(run, metrics["served"][0]["weights"], mode="interpolate")
    with torch_threads():  # the thread count the run's units computed with (test_pipeline.write_run_config)
        again = served.generate(answered["prompt"].tolist(), seed=config.seed + 2000)
    assert again == answered["response"].tolist()


def _cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PARETOHQD_PROGRESS": "0", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "paretohqd.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd)


def test_cli_serves_a_prompt_file_in_its_own_process(finished_run, tmp_path):
    run, _ = finished_run
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"q": "tea please?"}\n{"q": "bread?"}\n')
    out = tmp_path / "answers.jsonl"
    many = _cli("generate", run, "--weights", "3,7", "--prompts", prompts, "--prompt_column", "q", "--output", out,
                "--mode", "interpolate", "--sampling.max_new_tokens", "4")
    assert many.returncode == 0, many.stderr
    assert "a mix of 0.4 x pref_02 + 0.6 x pref_01" in many.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["prompt"] for r in records] == ["tea please?", "bread?"] and all(r["response"] for r in records)
    assert all(r["weights"] == [0.3, 0.7] and r["mode"] == "interpolate" and r["model"] is None for r in records)
    assert records[0]["made_from"][1] == {"model": "pref_01", "weights": [0.5, 0.5], "weight": 0.6}


def test_a_run_copied_elsewhere_without_its_training_data_still_serves_and_exports(finished_run, tmp_path, capsys):
    """What the run directory holds is enough: `cp -r` to another machine, the training data left behind."""
    import shutil

    import yaml

    from paretohqd.cli import main

    run, _ = finished_run
    copied = tmp_path / "moved" / "run"
    shutil.copytree(run, copied, copy_function=shutil.copy)
    resolved = copied / "config.resolved.yaml"
    config = yaml.safe_load(resolved.read_text())
    config["data"]["source"] = str(tmp_path / "left-behind.jsonl")  # no such file here
    resolved.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["generate", str(copied), "--weights", "0.3,0.7", "--prompt", "cat please?",
                 "--sampling.max_new_tokens", "3"]) == 0, capsys.readouterr().err
    assert main(["export", str(copied), "--weights", "1,0", "--output", str(tmp_path / "exported")]) == 0, \
        capsys.readouterr().err
    assert (tmp_path / "exported").is_dir()


def test_cli_prints_the_answer_to_one_prompt(finished_run, capsys):
    from paretohqd.cli import main

    run, _ = finished_run
    assert main(["generate", str(run), "--weights", "0.3,0.7", "--prompt", "cat please?"]) == 0
    captured = capsys.readouterr()
    assert "its model pref_01" in captured.err and "nearest" in captured.err
    assert captured.out.strip() and not captured.out.startswith("{")


@pytest.mark.parametrize("args,fragment", [
    (["--weights", "0.3,0.3,0.4"], "has 3 weights but there are 2 objectives"),
    (["--weights", "-1,2"], "negative weight"),
    (["--weights", "0,0"], "all zeros"),
    (["--weights", "nan,1"], "non-finite"),
    (["--weights", "a,b"], "numbers separated by commas"),
    ([], "--weights"),
    (["--weights", "1,0", "--prompts", "missing.jsonl"], "missing.jsonl"),
    (["--weights", "1,0", "--train.sft.max_steps", "2"], "--sampling.FIELD"),
    (["--weights", "1,0", "--mode", "linear"], "invalid choice"),
])
def test_cli_refuses_bad_serving_input_in_one_sentence(finished_run, args, fragment):
    run, _ = finished_run
    if "--prompts" not in args:
        args = [*args, "--prompt", "hi"]
    code, err = _main("generate", run, *args)
    lines = [line for line in err.splitlines() if line.startswith("paretohqd: error:")]
    assert code == 2 and len(lines) == 1 and fragment in lines[0], err
    assert "Traceback" not in err


def _main(*args):
    """The CLI in this process: (exit code, stderr)."""
    result = cli(*args)
    return result.code, result.err


def test_cli_tells_a_config_from_a_run_directory(finished_run, tmp_path):
    run, _ = finished_run
    config = run.parent / "run.yaml"
    code, err = _main("generate", config, "--weights", "1,0", "--prompt", "hi")
    assert code == 2 and "is a config file, not a run directory" in err
    empty = tmp_path / "not_a_run"
    empty.mkdir()
    assert "has no config.resolved.yaml" in _main("generate", empty, "--weights", "1,0", "--prompt", "hi")[1]


def test_an_unfinished_model_is_named(tiny_policy, tmp_path):
    path = write_run_config(tmp_path, tiny_policy, stage2__enabled=False)
    paretohqd.run_stage(paretohqd.load_config(path), "select", log=lambda *_: None)
    with pytest.raises(UserError, match="has not finished train/stage1/pref_01"):
        paretohqd.load_policy(tmp_path / "run", [0.5, 0.5])


# ------------------------------------------------------------------ every method's rule, from its plan alone


def _serving_rule(tiny_policy, tmp_path, method, weights, mode=None, overrides=()):
    from paretohqd.methods import get_method

    path = write_run_config(tmp_path, tiny_policy, method=method, stage2__enabled=False)
    config = paretohqd.load_config(path, list(overrides))
    plan = paretohqd.plan(config, "train")
    return get_method(method).served_model(plan.shared, plan.training, np.asarray(weights, dtype=float), mode), plan


def test_ric_writes_the_preference_targets_into_the_prompt(tiny_policy, tmp_path):
    from paretohqd.methods.ric import preference_targets

    model, _plan = _serving_rule(tiny_policy, tmp_path, "ric", [0.3, 0.7])
    assert [u.name for u in model.adapters] == ["train/ric/online_2"] and model.mix is None  # the final model
    assert model.condition_settings["weights"] == [0.3, 0.7]
    bounds = {"target_low": [-4.0, -4.0], "target_high": [4.0, 4.0]}
    normalisation = tmp_path / "normalisation.json"
    normalisation.write_text(json.dumps(bounds))
    shown = model.condition(["\n\nHuman: hi\n\nAssistant:"], {"normalisation": [normalisation]})[0]
    targets = preference_targets(np.array([[0.3, 0.7]]), np.array([-4.0, -4.0]), np.array([4.0, 4.0]), "l2")[0]
    assert shown == f"\n\nHuman: hi <rm1_score> {targets[0]:.1f} <rm2_score> {targets[1]:.1f} \n\nAssistant:"
    with pytest.raises(UserError, match="serves every preference with its own rule"):
        _serving_rule(tiny_policy, tmp_path, "ric", [0.3, 0.7], mode="interpolate")


def test_soups_serve_the_soup_of_the_preference(tiny_policy, tmp_path):
    model, _ = _serving_rule(tiny_policy, tmp_path, "soups", [0.3, 0.7])
    assert [u.name for u in model.adapters] == ["train/soups/objective_00", "train/soups/objective_01"]
    assert model.mix == [0.3, 0.7] and [m["weight"] for m in model.made_from] == [0.3, 0.7]


def test_sft_serves_its_one_model(tiny_policy, tmp_path):
    model, _ = _serving_rule(tiny_policy, tmp_path, "sft", [0.9, 0.1])
    assert [u.name for u in model.adapters] == ["train/sft"] and model.mix is None


def test_morlhf_serves_among_the_preferences_it_trained(tiny_policy, tmp_path):
    model, _ = _serving_rule(tiny_policy, tmp_path, "morlhf", [0.9, 0.1], overrides=["--morlhf.preferences", "[1,2]"])
    assert model.name == "pref_01"  # (1, 0) was not trained: (0.5, 0.5) is the nearest trained one
    with pytest.raises(UserError, match="outside"):
        _serving_rule(tiny_policy, tmp_path, "morlhf", [0.9, 0.1], "interpolate", ["--morlhf.preferences", "[1,2]"])


@pytest.mark.parametrize("served,fragment", [
    ("corners", "served must be a list of weight vectors or 'midpoints'"),
    ([[0.2, 0.3, 0.5]], "evaluate.served: preference 0 has 3 weights but there are 2 objectives"),
    ([[-1, 2]], "evaluate.served: preference 0 has a negative weight"),
])
def test_bad_served_preferences_are_refused_before_any_work(tiny_policy, tmp_path, served, fragment):
    path = write_run_config(tmp_path, tiny_policy, stage2__enabled=False, evaluate__served=served)
    with pytest.raises(UserError, match=fragment):
        paretohqd.plan(paretohqd.load_config(path))
    assert not (tmp_path / "run").exists()
