"""RiC as RiC's code (ric/utils.py, ric/main.py of YangRui2015/RiC) does it: each rule checked against a direct
transcription of RiC's loop on asymmetric and three-objective cases."""

import json

import numpy as np
import pandas as pd
import yaml

from paretohqd.cli import main
from paretohqd.config import load_config
from paretohqd.methods import get_method
from paretohqd.methods.ric import (
    boundary_targets,
    keep_mask,
    normal_range,
    preference_targets,
    reward_labels,
    ric_prompt,
    squash_scales,
)
from paretohqd.pipeline import build_plan
from paretohqd.pipeline.generate import sample_prompts

from .test_pipeline import write_run_config


def ric_map_rewards(rewards_list, preference, method):
    """RiC's ``map_rewards_from_preference``, transcribed loop for loop (the oracle)."""
    n = len(rewards_list)
    target = np.zeros(n)
    if method == "linf":
        max_id = int(np.argmax(preference))
        target[max_id] = np.round(np.quantile(rewards_list[max_id], 1), 1)
        for i in range(n):
            if i != max_id:
                low, high = np.quantile(rewards_list[i], 0), np.quantile(rewards_list[i], 1)
                target[i] = np.round(min(n * preference[i], 1) * (high - low) + low, 1)
    elif method == "l2":
        for i in range(n):
            low, high = np.quantile(rewards_list[i], 0), np.quantile(rewards_list[i], 1)
            target[i] = np.round(preference[i] / np.sqrt(np.power(preference, 2).sum()) * (high - low) + low, 1)
    return target


def test_prompt_has_rics_tokens_rounding_and_place():
    dialogue = "\n\nHuman: who is stan\n\nAssistant:"
    # RiC: prompt minus the marker, ' ', '<rm1_score> 0.5 <rm2_score> -0.3 ', the marker
    assert ric_prompt(dialogue, [0.54, -0.26], ["harmless", "helpful"]) == (
        "\n\nHuman: who is stan <rm1_score> 0.5 <rm2_score> -0.3 \n\nAssistant:")
    # RiC's own str.rstrip(marker) strips a character set ("stan" goes too); only the marker is removed here
    assert dialogue.rstrip("\n\nAssistant:") == "\n\nHuman: who is "  # noqa: B005, PLE1310
    summary = "### Instruction: Summarise. ### Input: a long post ### Response: "
    assert ric_prompt(summary, [1.0, 0.25, -4.0], ["a", "b", "c"]) == (
        "### Instruction: Summarise. ### Input: a long post <rm1_score> 1.0 <rm2_score> 0.2 <rm3_score> -4.0 "
        "### Response: ")
    assert ric_prompt("Plain text.", [0.3, 0.7], ["a", "b"], token="<{name}>", decimals=2) == (
        "Plain text. <a> 0.30 <b> 0.70")


def test_linf_and_l2_mappings_match_rics_code_on_asymmetric_and_three_objective_preferences():
    low, high = normal_range(50000, np.random.default_rng(0))
    assert -5.0 < low < -3.8 and 3.8 < high < 5.0  # the extremes of 50k standard-normal draws
    ranges = [np.array([low, high])] * 3
    # w = (0.3, 0.7): RiC puts objective 1 at 0.6 of the range (min(2 * 0.3, 1)), objective 2 at the top
    linf = preference_targets(np.array([[0.3, 0.7]]), low, high, "linf")[0]
    np.testing.assert_allclose(linf, [np.round(0.6 * (high - low) + low, 1), np.round(high, 1)])
    rng = np.random.default_rng(1)
    weights = np.vstack([[[0.3, 0.7, 0.0]], [[0.1, 0.1, 0.8]], [[0.2, 0.4, 0.4]], rng.dirichlet([1, 1, 1], 20)])
    for mapping in ("linf", "l2"):
        ours = preference_targets(weights, low, high, mapping)
        oracle = np.array([ric_map_rewards(ranges, w, mapping) for w in weights])
        np.testing.assert_allclose(ours, oracle, atol=1e-12)


def test_online_goals_are_rics_sample_goals():
    low, high = (round(v, 1) for v in normal_range(100000, np.random.default_rng(2)))
    assert -5.0 < low < -3.8 and 3.8 < high < 5.0
    ours = boundary_targets(200, 3, low, high, np.random.default_rng(3))
    draws = np.round(np.random.default_rng(3).random((200, 3)) * (high - low) + low, 1)  # RiC's loop on one draw
    oracle = draws.copy()
    for k in range(len(oracle)):
        smallest = np.argmin(oracle[k])
        for j in range(3):
            if j != smallest:
                oracle[k][j] = high
    np.testing.assert_array_equal(ours, oracle)
    assert ((ours == high).sum(axis=1) >= 2).all()


def test_offline_labels_are_squashed_like_rics_balancing():
    rng = np.random.default_rng(4)
    raw = np.column_stack([rng.normal(1.0, 2.0, 5000), rng.gamma(2.0, 1.0, 5000), rng.normal(-3, 0.5, 5000)])
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    z = np.round((raw - mean) / std, 1)
    positive, negative = squash_scales(z, 4.0, [0.0001, 0.9999], 10.0)
    bounds = {"mean": mean.tolist(), "std": std.tolist(), "squash": 4.0, "squash_clip": 10.0,
              "positive_scale": positive.tolist(), "negative_scale": negative.tolist()}
    ours = reward_labels(raw, bounds, squashed=True, decimals=1)
    oracle = np.zeros_like(z)
    for j in range(3):  # RiC's balancing_rewards, per objective and per sample
        scores = np.clip(z[:, j], -10, 10)
        ratio1, ratio2 = 4.0 / np.quantile(scores, 0.9999), -4.0 / np.quantile(scores, 0.0001)
        for i, z_value in enumerate(z[:, j]):
            value = np.clip(z_value, -10, 10)
            oracle[i, j] = np.round(np.clip((ratio1 if value >= 0 else ratio2) * value, -4, 4), 1)
    np.testing.assert_allclose(ours, oracle, atol=1e-12)
    assert ours.max() == 4.0 and ours.min() == -4.0
    np.testing.assert_allclose(reward_labels(raw, bounds, squashed=False, decimals=1), z)  # online relabels


def test_keep_mask_on_three_objectives():
    z = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.5], [0.2, 0.9, 0.1]])
    assert keep_mask(z, 0.7).tolist() == [False, True, True, True, True]
    assert keep_mask(z, 0.9).tolist() == [False, True, True, False, True]


def test_online_prompts_are_drawn_from_samples_with_replacement():
    samples = pd.DataFrame({"id": [f"s{i}" for i in range(6)], "prompt": ["a", "a", "a", "a", "b", "c"],
                            "response": list("uvwxyz"), "score": np.arange(6.0)})
    drawn = sample_prompts(samples, {"count": 50, "seed": 0, "drop": ["score"], "replace": True})
    assert len(drawn) == 50 and drawn["prompt_id"].is_unique and list(drawn.columns) == ["prompt_id", "prompt"]
    assert (drawn["prompt"] == "a").mean() > 0.5  # a prompt with more samples is drawn more often
    distinct = sample_prompts(samples, {"count": 50, "seed": 0, "drop": ["score"]})
    assert sorted(distinct["prompt"]) == ["a", "b", "c"]


def test_online_rounds_accumulate_their_kept_samples(tiny_policy, tmp_path):
    config_path = write_run_config(tmp_path, tiny_policy)
    raw = yaml.safe_load(config_path.read_text())
    raw["method"] = "ric"
    raw["ric"] = {"online": {"iterations": 3}}
    config_path.write_text(yaml.safe_dump(raw))
    config = load_config(config_path)
    units = {u.name: u for u in build_plan(get_method("ric"), config).units}
    assert sorted(r for r in units["train/ric/online_3"].upstream if r.startswith("generated")) == [
        "generated:1", "generated:2", "generated:3"]
    config.ric.online.accumulate = False
    units = {u.name: u for u in build_plan(get_method("ric"), config).units}
    assert sorted(r for r in units["train/ric/online_3"].upstream if r.startswith("generated")) == ["generated:3"]


def test_ric_offline_and_two_online_rounds(tiny_policy, tmp_path):
    config_path = write_run_config(tmp_path, tiny_policy)
    config = yaml.safe_load(config_path.read_text())
    config["method"] = "ric"
    config["ric"] = {"offline": {"sft": {"max_steps": 2}, "lora": {"r": 4, "lora_alpha": 8}},
                     "online": {"iterations": 2, "prompts": 6, "sft": {"max_steps": 1}, "mix_samples": 4,
                                "sampling": {"max_new_tokens": 6, "batch_size": 4}}}
    config_path.write_text(yaml.safe_dump(config))
    assert main(["run", str(config_path)]) == 0
    run = tmp_path / "run"
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["method"] == "RiC" and len(metrics["preferences"]) == 3
    bounds = json.loads((run / "models" / "ric" / "normalisation.json").read_text())
    assert -5.0 < bounds["target_low"][0] < -3.8 and bounds["label_high"] == [4.0, 4.0]
    first = json.loads((run / "models" / "ric" / "online_1" / "training.json").read_text())["num_samples"]
    second = json.loads((run / "models" / "ric" / "online_2" / "training.json").read_text())["num_samples"]
    assert second > first  # round 2 trains on round 1's kept samples too
    generations = (run / "ric" / "online_1" / "generations.jsonl").read_text().splitlines()
    assert len(generations) == 6  # drawn with replacement: as many as asked, even beyond the distinct prompts
    assert "<rm1_score>" not in (run / "generations" / "pref_00.jsonl").read_text()  # files keep the original
    assert main(["run", str(config_path)]) == 0
