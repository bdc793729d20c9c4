import json

import numpy as np
import yaml

from paretohqd.cli import main
from paretohqd.methods.ric import boundary_targets, keep_mask, preference_targets, ric_prompt

from .test_pipeline import write_run_config


def test_ric_prompt_is_one_template_and_removes_only_the_suffix():
    dialogue = "\n\nHuman: tell me about Assistant:\n\nAssistant:"
    assert ric_prompt(dialogue, [0.5, -0.25], ["harmless", "helpful"]) == (
        "\n\nHuman: tell me about Assistant: <harmless> 0.50 <helpful> -0.25\n\nAssistant:")
    # str.rstrip("\n\nAssistant:") strips a character set and would eat "stan" too; removesuffix does not
    tricky = "\n\nHuman: who is stan\n\nAssistant:"
    assert tricky.rstrip("\n\nAssistant:") == "\n\nHuman: who is "
    assert ric_prompt(tricky, [1.0], ["r"]).startswith("\n\nHuman: who is stan <r> 1.00")
    assert ric_prompt("Summarise this.", [1.0], ["r"]) == "Summarise this. <r> 1.00"


def test_preference_mappings():
    low, high = np.array([-2.0, -1.0]), np.array([2.0, 3.0])
    weights = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    l2 = preference_targets(weights, low, high, "l2")
    np.testing.assert_allclose(l2[0], [2.0, -1.0])
    np.testing.assert_allclose(l2[1], np.array([0.5, 0.5]) / np.sqrt(0.5) * (high - low) + low)
    linf = preference_targets(weights, low, high, "linf")
    np.testing.assert_allclose(linf[1], high)  # the balanced preference asks for the top of both
    targets = boundary_targets(100, high, np.random.default_rng(0))
    assert ((targets == high).sum(axis=1) == 1).all()  # all but one coordinate at the high end
    z = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    assert keep_mask(z, 0.7).tolist() == [False, True, True, False]


def test_ric_offline_and_one_online_round(tiny_policy, tmp_path):
    config_path = write_run_config(tmp_path, tiny_policy)
    config = yaml.safe_load(config_path.read_text())
    config["method"] = "ric"
    config["ric"] = {"offline": {"sft": {"max_steps": 2}, "lora": {"r": 4, "lora_alpha": 8}},
                     "online": {"iterations": 1, "prompts": 4, "sft": {"max_steps": 1}, "mix_samples": 4,
                                "sampling": {"max_new_tokens": 6, "batch_size": 4}}}
    config_path.write_text(yaml.safe_dump(config))
    assert main(["run", str(config_path)]) == 0
    run = tmp_path / "run"
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["method"] == "RiC" and len(metrics["preferences"]) == 3
    assert (run / "models" / "ric" / "online_1" / ".complete").exists()
    generated = (run / "generations" / "pref_00.jsonl").read_text()
    assert "<brevity>" not in generated  # files keep the original prompt: rewards never see the targets
    assert main(["run", str(config_path)]) == 0
