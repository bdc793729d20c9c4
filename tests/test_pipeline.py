"""The whole ParetoHqD pipeline on a tiny random policy: training, stage 2, generation, evaluation, resume."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

import paretohqd
from paretohqd.cli import main
from paretohqd.config import load_config

from .conftest import EXACT_THREADS, REPO

WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "it", "was", "good", "so", "we", "all", "went", "home", "to",
         "eat", "some", "bread", "with", "tea"]


def write_run_config(tmp_path, policy, run_name="run", **overrides):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        question = " ".join(rng.choice(WORDS, 5))
        rows.append({"id": f"s{i}", "prompt": f"\n\nHuman: {question}?\n\nAssistant:",
                     "response": " ".join(rng.choice(WORDS, int(rng.integers(1, 12))))})
    data = tmp_path / "data.jsonl"
    pd.DataFrame(rows).to_json(data, orient="records", lines=True)
    test = tmp_path / "test.jsonl"
    pd.DataFrame({"prompt": [f"\n\nHuman: {w} please?\n\nAssistant:" for w in ("cat", "bread", "tea")]}).to_json(
        test, orient="records", lines=True)
    config = {
        "output_dir": str(tmp_path / run_name), "seed": 0,
        "data": {"source": str(data), "id_column": "id"},
        "objectives": [{"name": "brevity", "builtin": "conciseness"},
                       {"name": "vowels", "type": "callable", "callable": "tests.helpers_objectives:vowel_share"}],
        "score": {"consistency_check": 2},
        "preferences": {"grid": "explicit", "weights": [[1, 0], [0.5, 0.5], [0, 1]]},
        "select": {"k": 6, "min_pool": 12},
        "model": {"name_or_path": str(policy)},
        "train": {"sft": {"max_steps": 3, "per_device_train_batch_size": 2, "max_length": 64, "learning_rate": 0.05,
                          "logging_steps": 1},
                  "lora": {"r": 4, "lora_alpha": 8}},
        "stage2": {"num_prompts": 5, "sampling": {"max_new_tokens": 8, "batch_size": 4}, "sft": {"max_steps": 2}},
        "soups": {"k": 6},
        "evaluate": {"source": str(test), "sampling": {"max_new_tokens": 8, "batch_size": 4}},
        # Every unit computes in one torch thread, whichever process runs it (this one, a subprocess, a Ray worker,
        # a launched rank): the tests that compare results bit for bit across processes rely on it (test_ray,
        # test_kill_resume, test_serve). Results in float arithmetic depend on the thread count, by how much and
        # where depending on the processor.
        "execution": {"resources": {"default": {"torch_threads": EXACT_THREADS}}},
    }
    for dotted, value in overrides.items():
        *sections, key = dotted.split("__")
        node = config
        for section in sections:
            node = node[section]
        node[key] = value
    path = tmp_path / f"{run_name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def artifacts(run_dir):
    """Every result file's content (not timings): what a resumed run must reproduce exactly."""
    files = {}
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir).as_posix()
        if path.is_dir() or "/cache/" in rel:
            continue
        if path.suffix in (".jsonl", ".safetensors", ".parquet") or path.name == "summary.json":
            files[rel] = path.read_bytes()
    return files


@pytest.fixture(scope="module")
def finished_run(tiny_policy, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("pipeline")
    config_path = write_run_config(tmp_path, tiny_policy)
    assert main(["run", str(config_path)]) == 0
    return tmp_path, config_path


def test_run_produces_every_artifact(finished_run):
    tmp_path, _ = finished_run
    run = tmp_path / "run"
    for pref in range(3):
        for stage in ("stage1", "stage2"):
            folder = run / "models" / f"pref_{pref:02d}" / stage
            assert (folder / "adapter_model.safetensors").exists() and (folder / ".complete").exists()
            card = (folder / "README.md").read_text()
            assert "preference weights" in card and "direction" in card and "base model" in card
        assert len((run / "generations" / f"pref_{pref:02d}.jsonl").read_text().splitlines()) == 3
    assert (run / "generations" / "base.jsonl").exists()
    assert (run / "stage2" / "selection" / "summary.json").exists()
    for folder in ("selection", "stage2/selection"):  # select.min_pool 12 given: no rule; stage 2 capped at its pool
        summary = json.loads((run / folder / "summary.json").read_text())
        assert summary["min_pool"] == min(12, summary["num_samples"]) and summary["min_pool_rule"] is None
        assert len(summary["mean_layers"]) == 3 and all(layer >= 0 for layer in summary["mean_layers"])
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    for key in ("method", "objectives", "preferences", "hypervolume_minmax_run_worst", "hypervolume_minmax_run_base",
                "hypervolume_definitions", "collapse_rate", "cost", "wall_seconds", "gpu_seconds", "num_test_prompts",
                "seed"):
        assert key in metrics
    assert metrics["num_test_prompts"] == 3 and len(metrics["preferences"]) == 3
    assert 0.0 <= metrics["hypervolume_minmax_run_worst"] <= 1.0 and 0.0 <= metrics["collapse_rate"] <= 1.0
    for stage in ("score", "select", "train_stage1", "stage2", "generate", "evaluate", "total"):
        assert stage in metrics["wall_seconds"]
    cost = metrics["cost"]
    assert cost["scoring"]["units"] >= 3 and cost["scoring"]["unrecorded_units"] == 0 and cost["scoring"]["key"]
    assert cost["training"]["wall_seconds"] > 0 and set(cost["generation"]["stages"]) == {"stage2"}
    assert {"generate", "evaluate"} <= set(cost["evaluation"]["stages"])  # held-out answers are no method's cost
    counts = cost["counts"]
    assert counts["sequences_trained"] > 0 and counts["tokens_trained"] > 0 and counts["samples_scored"] > 0
    assert counts["replies_generated"] > 0 and counts["evaluation_replies"] == 3 * 7  # 3 + 3 stage-1 + base
    # the reference point comes from the offline scores, declared before any training; every model is paired
    # with the base model, and each final model with its stage-1 model
    scores = pd.read_parquet(run / "scores" / "scores.parquet")
    np.testing.assert_allclose(metrics["reference_point"]["raw"],
                               np.quantile(scores[metrics["objectives"]].to_numpy(), 0.1, axis=0))
    assert [p["model"] for p in metrics["vs_base"]] == ["pref_00", "pref_01", "pref_02"]
    assert [p["earlier"] for p in metrics["earlier_stage"]["pairs"]] == [f"pref_0{i}_stage1" for i in range(3)]
    assert "hypervolume_raw_ref" in metrics and "base_hypervolume_raw_ref" in metrics
    assert cost["method"]["wall_seconds"] == pytest.approx(cost["training"]["wall_seconds"]
                                                           + cost["generation"]["wall_seconds"])
    assert metrics["wall_seconds"]["total"] == pytest.approx(cost["total"]["wall_seconds"])
    assert (run / "eval" / "front.png").stat().st_size > 1000
    report = (run / "eval" / "report.md").read_text()
    assert "hypervolume" in report and "front.png" in report and "pref_00" in report
    page = (run / "eval" / "report.html").read_text()  # the front, both selection stages, the sample outputs
    assert all(f'id="{div}"' in page for div in ("front", "selection-0", "selection-1")) and "pref_02" in page
    assert "Against the base model" in page and "Against the base model" in report  # the paired differences
    assert list(pd.read_csv(run / "eval" / "per_preference.csv")["model"]) == [
        "pref_00", "pref_01", "pref_02", "pref_00_stage1", "pref_01_stage1", "pref_02_stage1", "base"]


def test_without_a_given_p_min_the_pool_scales_with_the_data(tiny_policy, tmp_path):
    """P_min by the default rule, max(0.625% of n, 5k), decided when n is known and recorded with the selection."""
    from paretohqd.pareto import default_min_pool, nondominated_layers

    path = write_run_config(tmp_path, tiny_policy, select__min_pool=None)
    paretohqd.run_stage(paretohqd.load_config(path), "select", log=lambda *_: None)
    run = tmp_path / "run"
    summary = json.loads((run / "selection" / "summary.json").read_text())
    assert summary["min_pool"] == default_min_pool(40, 6) == 30
    assert summary["min_pool_rule"] == {"fraction": 0.00625, "per_k": 5.0, "k": 6}
    scores = pd.read_parquet(run / "scores" / "scores.parquet")
    layers = nondominated_layers(scores[["brevity", "vowels"]].to_numpy(), maximise=True)
    depth = int(np.searchsorted(np.cumsum(np.bincount(layers)), 30)) + 1  # the fewest whole layers holding 30
    assert summary["pool_size"] == int((layers < depth).sum()) and summary["num_layers"] == depth
    for index, name in enumerate(summary["files"]):
        entry = json.loads((run / "selection" / name).read_text())
        assert entry["mean_layer"] == pytest.approx(np.mean(layers[entry["rows"]]))
        assert summary["mean_layers"][index] == pytest.approx(entry["mean_layer"])


def test_lora_changes_adapters_not_base_and_learns_eos(finished_run, tiny_policy):
    import torch
    from safetensors.torch import load_file
    from transformers import GenerationConfig

    tmp_path, _ = finished_run
    folder = tmp_path / "run" / "models" / "pref_00" / "stage1"
    adapter = load_file(folder / "adapter_model.safetensors")
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # lora_B starts at zero: training moved it
    stage2 = load_file(tmp_path / "run" / "models" / "pref_00" / "stage2" / "adapter_model.safetensors")
    assert any(not torch.equal(adapter[k], stage2[k]) for k in adapter)  # stage 2 continued training
    assert not any("lora" not in k for k in adapter)  # only adapters saved: the base was frozen
    base = load_file(tiny_policy / "model.safetensors")
    from paretohqd.policy import load_policy

    config = load_config(finished_run[1])
    policy = load_policy(config.model, [folder])
    merged, tokenizer = policy.model, policy.tokenizer
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert eos in GenerationConfig.from_pretrained(folder).eos_token_id
    assert torch.equal(base["model.embed_tokens.weight"], merged.model.embed_tokens.weight.detach())


def test_rerun_does_nothing(finished_run, capsys):
    tmp_path, config_path = finished_run
    before = artifacts(tmp_path / "run")
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*") if p.is_file()
              and p.name != "manifest.json" and p.name != "config.resolved.yaml" and p.name != "env.json"}
    assert main(["run", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("done already") >= 5
    assert artifacts(tmp_path / "run") == before
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())


def test_interrupted_run_resumes_to_identical_results(finished_run, tiny_policy, tmp_path, monkeypatch):
    config_path = write_run_config(tmp_path, tiny_policy, run_name="crashed")
    import paretohqd.pipeline.train as train_units

    real = train_units.train_model
    calls = {"n": 0}

    def crash_on_fourth(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # stage 1 is done (3 models); die while training the first stage-2 model
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_units, "train_model", crash_on_fourth)
    assert main(["run", str(config_path)]) == 130
    assert (tmp_path / "crashed" / "models" / "pref_02" / "stage1" / ".complete").exists()
    assert not (tmp_path / "crashed" / "eval").exists()
    monkeypatch.setattr(train_units, "train_model", real)
    assert main(["run", str(config_path)]) == 0
    resumed = artifacts(tmp_path / "crashed")
    reference = artifacts(finished_run[0] / "run")
    assert resumed.keys() == reference.keys()
    different = [name for name in reference if resumed[name] != reference[name]]
    assert not different


def test_full_fine_tuning_changes_weights(tiny_policy, tmp_path):
    import torch
    from safetensors.torch import load_file

    config = load_config(write_run_config(tmp_path, tiny_policy, train__use_lora=False,
                                          train__sft__learning_rate=0.01,
                                          preferences__weights=[[1, 0]], stage2__enabled=False))
    paretohqd.run_stage(config, "train")
    trained = load_file(tmp_path / "run" / "models" / "pref_00" / "stage1" / "model.safetensors")
    base = load_file(tiny_policy / "model.safetensors")
    changed = [k for k in base if k in trained and not torch.equal(base[k], trained[k])]
    assert len(changed) > len(base) // 2


def test_kill_9_then_resume_gives_identical_results(finished_run, tiny_policy, tmp_path):
    """A real SIGKILL in the middle of training, then a rerun: the same artifacts as an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    config_path = write_run_config(tmp_path, tiny_policy, run_name="killed")
    env = {**os.environ, "PARETOHQD_PROGRESS": "0"}
    process = subprocess.Popen([sys.executable, "-m", "paretohqd.cli", "run", str(config_path)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(REPO))
    marker = tmp_path / "killed" / "models" / "pref_00" / "stage1" / ".complete"
    deadline = time.time() + 120
    while not marker.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert marker.exists(), "the run ended or stalled before its first model was saved"
    assert not (tmp_path / "killed" / "eval" / "metrics.json").exists()
    assert main(["run", str(config_path)]) == 0
    resumed = artifacts(tmp_path / "killed")
    reference = artifacts(finished_run[0] / "run")
    assert resumed.keys() == reference.keys()
    assert not [name for name in reference if resumed[name] != reference[name]]


def test_response_tokens_only_and_end_of_turn_is_trained(tiny_policy, tmp_path):
    """The loss covers the response and its end-of-turn token, never the prompt: the model learns to stop."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from paretohqd.policy import Policy

    tokenizer = AutoTokenizer.from_pretrained(tiny_policy)
    policy = Policy(None, tokenizer, max_prompt_length=32)
    dataset = datasets.Dataset.from_list([policy.encode_for_training("\n\nHuman: how can i help?\n\nAssistant:",
                                                                     "yes you can", max_length=64)])
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_policy), train_dataset=dataset,
                         processing_class=tokenizer,
                         args=SFTConfig(output_dir=str(tmp_path), max_steps=1, use_cpu=True, report_to="none",
                                        completion_only_loss=True, activation_checkpointing=False))
    row = trainer.train_dataset[0]
    trained = [label for label in row["labels"] if label != -100]
    text = tokenizer.decode(trained)
    assert "yes you can" in text and "how" not in text
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in trained


def test_bad_test_prompts_fail_before_any_work(tiny_policy, tmp_path, capsys):
    config_path = write_run_config(tmp_path, tiny_policy, evaluate__source=str(tmp_path / "missing.jsonl"))
    assert main(["run", str(config_path)]) == 2
    assert "missing.jsonl' does not exist" in capsys.readouterr().err
    assert not (tmp_path / "run" / "scores").exists()


def test_objectives_reading_a_context_column_score_generated_text(tiny_policy, tmp_path):
    """Like the summarization recipe: an objective reads the data's 'post' column, also for new responses."""
    config_path = write_run_config(tmp_path, tiny_policy, train__sft__max_steps=1, stage2__sft__max_steps=1)
    config = yaml.safe_load(config_path.read_text())
    for name in ("data.jsonl", "test.jsonl"):
        frame = pd.read_json(tmp_path / name, lines=True)
        frame["post"] = "the cat sat on the mat " + frame["prompt"].str.len().astype(str)
        frame.to_json(tmp_path / name, orient="records", lines=True)
    config["objectives"][1] = {"name": "faithful", "builtin": "relevance", "kwargs": {"context_column": "post"}}
    config["preferences"]["weights"] = [[1, 0], [0, 1]]
    config_path.write_text(yaml.safe_dump(config))
    assert main(["run", str(config_path)]) == 0
    scores = pd.read_parquet(tmp_path / "run" / "eval" / "scores.parquet")
    assert scores["post"].notna().all() and scores["faithful"].notna().all()


def test_sft_baseline_runs_through_the_same_stages(tiny_policy, tmp_path):
    config_path = write_run_config(tmp_path, tiny_policy, train__sft__max_steps=2)
    config = yaml.safe_load(config_path.read_text())
    config["method"] = "sft"
    config_path.write_text(yaml.safe_dump(config))
    assert main(["run", str(config_path)]) == 0
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert metrics["method"] == "SFT" and [p["model"] for p in metrics["preferences"]] == ["sft"]
    assert (tmp_path / "run" / "models" / "sft" / "stage1" / "README.md").exists()
    assert "train_sft" in metrics["wall_seconds"]
    assert main(["select", str(config_path)]) == 2


def test_rewarded_soups_average_the_ingredients_exactly(tiny_policy, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from paretohqd.policy.adapters import combine, load_trained

    config_path = write_run_config(tmp_path, tiny_policy, train__sft__max_steps=2)
    raw = yaml.safe_load(config_path.read_text())
    raw["method"] = "soups"
    config_path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(config_path)]) == 0
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert metrics["method"] == "Rewarded Soups" and len(metrics["preferences"]) == 3

    config = load_config(config_path)
    paths = [tmp_path / "run" / "models" / f"objective_{i:02d}" / "stage1" for i in range(2)]
    base = AutoModelForCausalLM.from_pretrained(tiny_policy).state_dict()
    ingredients = [load_trained(p, config.model)[0].state_dict() for p in paths]
    soup = combine(paths, [0.25, 0.75], config.model)[0].state_dict()
    for key, value in base.items():
        expected = value + 0.25 * (ingredients[0][key] - value) + 0.75 * (ingredients[1][key] - value)
        assert torch.allclose(soup[key], expected, atol=1e-5), key
    one_hot = combine(paths, [1.0, 0.0], config.model)[0].state_dict()
    assert all(torch.allclose(one_hot[k], ingredients[0][k], atol=1e-5) for k in base)


@pytest.mark.parametrize("override, message", [
    (["--train.sft.learnin_rate", "0.1"], "train.sft.learnin_rate is not a trl.SFTConfig field; did you mean "
                                          "'learning_rate'?"),
    (["--stage2.sft.lr_scheduler_type", "bogus"], "train.sft + stage2.sft is not a valid trl.SFTConfig: bogus"),
    (["--train.lora.rr", "4"], "train.lora.rr is not a peft.LoraConfig field"),
    (["--stage2.sft.output_dir", "x"], "stage2.sft.output_dir is set by the run itself"),
])
def test_training_settings_are_checked_against_trl_and_peft_before_any_work(tiny_policy, tmp_path, capsys,
                                                                           override, message):
    config_path = write_run_config(tmp_path, tiny_policy)
    assert main(["run", str(config_path), *override]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "scores").exists() and not (tmp_path / "run" / "inputs").exists()
