"""MORLHF (RLOO): rewards reach TRL as one function per objective and TRL forms sum_i w_i r_i; a whole tiny run
trains the selected preferences only; bad settings are one sentence before any work."""

import dataclasses
import functools
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from paretohqd.cli import main
from paretohqd.config import ObjectiveConfig, load_config
from paretohqd.rewards import build_objective
from paretohqd.rewards.builtin import FunctionObjective
from paretohqd.rewards.scoring import score_rows

from .test_pipeline import write_run_config

PROMPTS = ["\n\nHuman: the cat sat on a mat?\n\nAssistant:", "\n\nHuman: tea please?\n\nAssistant:"]
# Two completions per prompt; the second is cut at the next turn marker, as held-out generation cuts it.
COMPLETIONS = ["the cat sat on a mat", "good\n\nHuman: and so we all went home", "we all went home", "tea"]
CLEANED = ["the cat sat on a mat", "good", "we all went home", "tea"]
RUN_OVERRIDES = {"method": "morlhf",
                 "morlhf": {"preferences": [0, 2], "prompts": 4,
                            "rloo": {"max_steps": 2, "per_device_train_batch_size": 4, "num_generations": 2,
                                     "max_completion_length": 6, "learning_rate": 0.05, "logging_steps": 1}}}


def morlhf_config(tmp_path, policy):
    """test_pipeline's tiny run (3 preferences, 2 objectives), as MORLHF on preferences 0 and 2."""
    path = write_run_config(tmp_path, policy)
    config = yaml.safe_load(path.read_text())
    config.update(RUN_OVERRIDES)
    path.write_text(yaml.safe_dump(config))
    return path


def tiny_objectives():
    """Three cheap objectives of different scales; the last reads the prompt (it must be the stored prompt)."""
    return [build_objective(ObjectiveConfig(name="brevity", builtin="conciseness")),
            build_objective(ObjectiveConfig(name="vowels", type="callable",
                                            callable="tests.helpers_objectives:vowel_share")),
            FunctionObjective("prompt_chars", lambda batch: batch["prompt"].str.len().to_numpy(dtype=float))]


def expected_raw(objectives):
    """Each objective's raw score of the cleaned completions to the stored prompts, computed directly."""
    frame = pd.DataFrame({"id": [f"s{i}" for i in range(4)], "prompt": [PROMPTS[0]] * 2 + [PROMPTS[1]] * 2,
                          "response": CLEANED})
    return np.stack([objective.score(frame) for objective in objectives], axis=1)


@pytest.mark.parametrize("weights", [(0.3, 0.7), (0.2, 0.3, 0.5)])
def test_trl_weights_our_reward_functions_into_the_weighted_sum(tiny_policy, tmp_path, weights):
    import torch
    from peft import LoraConfig
    from trl import RLOOConfig, RLOOTrainer

    from paretohqd.policy import Policy, load_causal_lm
    from paretohqd.train.rloo import ObjectiveReward, prompt_dataset, rloo_run_settings

    objectives = tiny_objectives()[:len(weights)]
    model, tokenizer = load_causal_lm(str(tiny_policy), "float32", None, None)
    policy = Policy(model, tokenizer, None, 64)
    model.generation_config.eos_token_id = policy.end_of_turn_ids
    dataset = prompt_dataset(pd.DataFrame({"prompt_id": ["p0", "p1"], "prompt": PROMPTS}), policy)
    rewards = [ObjectiveReward(o.name, functools.partial(score_rows, o, batch_size=2)) for o in objectives]
    settings = {"num_generations": 2, "per_device_train_batch_size": 4, "max_completion_length": 8, "beta": 0.05,
                "bf16": False, "activation_checkpointing": False}
    args = RLOOConfig(**rloo_run_settings(settings, weights), output_dir=str(tmp_path / "trainer"), seed=0,
                      use_cpu=True, report_to="none", disable_tqdm=True)
    trainer = RLOOTrainer(model=model, reward_funcs=rewards, args=args, train_dataset=dataset,
                          processing_class=tokenizer, peft_config=LoraConfig(r=2, lora_alpha=4, task_type="CAUSAL_LM"))
    inputs = [dataset[0], dataset[0], dataset[1], dataset[1]]
    # The prompts TRL tokenizes are the policy's chat text of the truncated stored prompts, as generation sees them.
    assert inputs[0]["prompt"] == policy.messages(PROMPTS[0]) and inputs[0]["_paretohqd_prompt"] == PROMPTS[0]

    def fixed_generation(prompts):
        prompt_ids = trainer._tokenize_prompts(prompts)[0]
        # the very tokens held-out generation feeds the model for these prompts
        assert prompt_ids[::2] == [tokenizer(policy.chat_text(p), add_special_tokens=False)["input_ids"]
                                   for p in PROMPTS]
        completion_ids = [tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
                          for text in COMPLETIONS]
        return prompt_ids, completion_ids, [[{"role": "assistant", "content": text}] for text in COMPLETIONS]

    trainer._generate = fixed_generation
    trainer.model.train()
    output = trainer._generate_and_score_completions(inputs)

    raw = expected_raw(objectives)
    total = raw @ np.array(weights)
    for j, objective in enumerate(objectives):  # TRL's per-function rewards are our raw scores
        assert np.allclose(list(trainer._logs["rewards"][objective.name]), raw[:, j], atol=1e-4)
    assert trainer._metrics["train"]["reward"][-1] == pytest.approx(total.mean(), abs=1e-4)
    # A fresh adapter is the base (no KL yet): each advantage is sum_i w_i r_i minus the other completion's.
    assert trainer._metrics["train"]["kl"][-1] == pytest.approx(0.0, abs=1e-6)
    pairs = total.reshape(2, 2)
    expected = np.stack([pairs[:, 0] - pairs[:, 1], pairs[:, 1] - pairs[:, 0]], axis=1).reshape(-1)
    assert torch.allclose(output["advantages"].float(), torch.tensor(expected, dtype=torch.float32), atol=1e-4)


def test_zscore_normalisation_uses_the_offline_scores_statistics():
    from paretohqd.methods.morlhf import reward_functions
    from paretohqd.train.rloo import completion_frame

    configs = [{"name": "brevity", "type": "builtin", "builtin": "conciseness", "batch_size": 2, "kwargs": {}},
               {"name": "vowels", "type": "callable", "callable": "tests.helpers_objectives:vowel_share",
                "batch_size": 2, "kwargs": {}}]
    settings = {"objectives": [{"name": "brevity"}, {"name": "vowels"}], "normalise": "zscore"}
    stats = {"objectives": ["vowels", "brevity"], "mean": [0.4, -3.0], "std": [0.0, 2.0]}
    full = [dataclasses.asdict(ObjectiveConfig(**c)) for c in configs]
    rewards, used = reward_functions(settings, full, stats)
    assert used == {"brevity": {"mean": -3.0, "std": 2.0}, "vowels": {"mean": 0.4, "std": 0.0}}
    prompts = [PROMPTS[0]] * 2 + [PROMPTS[1]] * 2
    completions = [[{"role": "assistant", "content": t}] for t in COMPLETIONS]
    raw = expected_raw(tiny_objectives()[:2])
    assert np.allclose(rewards[0](prompts, completions), (raw[:, 0] + 3.0) / 2.0)
    assert np.allclose(rewards[1](prompts, completions), raw[:, 1] - 0.4)  # a zero std leaves the scale alone
    none, _ = reward_functions({**settings, "normalise": "none"}, full, stats)
    assert np.allclose(none[0](prompts, completions), raw[:, 0])
    frame = completion_frame(prompts, completions, {"_paretohqd_prompt": prompts, "post": list("abcd"),
                                                   "prompt_id": ["p0", "p0", "p1", "p1"], "log_metric": print})
    assert list(frame["response"]) == CLEANED and list(frame["post"]) == list("abcd")
    assert list(frame["id"]) == ["p0:0", "p0:1", "p1:2", "p1:3"]


def test_morlhf_run_trains_the_selected_preferences_and_leaves_the_base_alone(tiny_policy, tmp_path):
    import torch
    from safetensors.torch import load_file
    from transformers import GenerationConfig

    from paretohqd.policy import load_policy

    config_path = morlhf_config(tmp_path, tiny_policy)
    config = load_config(config_path)
    assert main(["run", str(config_path)]) == 0
    run = tmp_path / "run"
    assert not (run / "models" / "pref_01").exists()
    base = load_file(tiny_policy / "model.safetensors")
    weights = {0: [1.0, 0.0], 2: [0.0, 1.0]}
    for index, w in weights.items():
        folder = run / "models" / f"pref_{index:02d}" / "morlhf"
        assert (folder / ".complete").exists() and not folder.with_name("morlhf.partial").exists()
        adapter = load_file(folder / "adapter_model.safetensors")
        assert adapter and all("lora" in key for key in adapter)  # only the adapter is saved
        assert any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)  # lora_B starts at 0: it moved
        stats = json.loads((folder / "training.json").read_text())
        assert stats["steps"] == 2 and stats["reward_weights"] == w and stats["beta"] > 0
        assert stats["normalise"] == "zscore" and set(stats["normalisation"]) == {"brevity", "vowels"}
        assert stats["rewards"] == ["brevity", "vowels"] and stats["num_prompts"] == 4
        assert "MORLHF (RLOO)" in (folder / "README.md").read_text()
        eos = GenerationConfig.from_pretrained(folder).eos_token_id
        assert load_policy(config.model).tokenizer.convert_tokens_to_ids("<|im_end|>") in eos
        assert len((run / "generations" / f"pref_{index:02d}.jsonl").read_text().splitlines()) == 3
    merged = load_policy(config.model, [run / "models" / "pref_00" / "morlhf"]).model
    assert torch.equal(base["model.embed_tokens.weight"], merged.model.embed_tokens.weight.detach())
    assert torch.equal(load_file(tiny_policy / "model.safetensors")["model.embed_tokens.weight"],
                       base["model.embed_tokens.weight"])
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["method"] == "MORLHF (RLOO)"
    assert list(pd.read_csv(run / "eval" / "per_preference.csv")["model"]) == ["pref_00", "pref_02", "base"]


@pytest.mark.parametrize("override, message", [
    (["--morlhf.rloo.num_generation", "2"], "morlhf.rloo.num_generation is not a trl.RLOOConfig field; did you "
                                            "mean 'num_generations'?"),
    (["--morlhf.rloo.beta", "0"], "morlhf.rloo.beta must be greater than 0"),
    (["--morlhf.rloo.reward_weights", "[1, 0]"], "morlhf.rloo.reward_weights is set by the run itself"),
    (["--morlhf.rloo.num_generations", "3"], "train.sft + morlhf.rloo is not a valid trl.RLOOConfig: "
                                             "generation_batch_size (4) must be divisible by num_generations (3)"),
    (["--morlhf.lora.rr", "4"], "morlhf.lora.rr is not a peft.LoraConfig field"),
    (["--morlhf.preferences", "[0, 3]"], "morlhf.preferences lists index 3, but the preference grid has 3 "
                                         "preferences (indices 0 to 2)"),
])
def test_bad_morlhf_settings_are_one_sentence_before_any_work(tiny_policy, tmp_path, capsys, override, message):
    config_path = morlhf_config(tmp_path, tiny_policy)
    assert main(["run", str(config_path), *override]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "scores").exists() and not (tmp_path / "run" / "inputs").exists()
