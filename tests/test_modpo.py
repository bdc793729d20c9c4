"""MODPO and Rewarded Soups' DPO ingredients: the margin hook in trl's DPOTrainer against MODPO's own formula,
preference pairs, and whole tiny runs through the pipeline."""

import dataclasses
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from paretohqd.cli import main
from paretohqd.config import load_config
from paretohqd.data import load_data
from paretohqd.data.pairs import candidate_pairs, preference_pairs
from paretohqd.methods import get_method
from paretohqd.methods.modpo import margin_rewards, modpo_beta, modpo_margins, modpo_weights
from paretohqd.pipeline import build_plan
from paretohqd.train.common import SFT_ONLY_FIELDS

WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "it", "was", "good", "so", "we", "all", "went", "home", "to",
         "eat", "some", "bread", "with", "tea"]


def test_sft_only_fields_are_the_ones_trl_dpo_and_rloo_configs_lack():
    from trl import DPOConfig, RLOOConfig, SFTConfig

    names = lambda cls: {f.name for f in dataclasses.fields(cls)}  # noqa: E731
    # loss_type is in both SFTConfig and DPOConfig but names another loss in each
    assert set(SFT_ONLY_FIELDS["dpo"]) == names(SFTConfig) - names(DPOConfig) | {"loss_type"}
    assert set(SFT_ONLY_FIELDS["rloo"]) == names(SFTConfig) - names(RLOOConfig)


# --- the loss -------------------------------------------------------------------------------------------------

def _sequence_logp(model, prompt_ids, completion_ids):
    import torch

    ids = torch.tensor([prompt_ids + completion_ids])
    logits = model(input_ids=ids).logits[0, :-1].double()
    token_logps = torch.log_softmax(logits, dim=-1).gather(1, ids[0, 1:, None])[:, 0]
    return token_logps[len(prompt_ids) - 1:].sum()


@pytest.mark.parametrize("weights, precompute, loss_type", [
    ((0.3, 0.7), False, "sigmoid"),
    ((0.2, 0.5, 0.3), True, "sigmoid"),
    ((0.6, 0.1, 0.3), False, "hinge"),
])
def test_trainer_loss_is_modpos_formula(tiny_policy, tmp_path, weights, precompute, loss_type):
    """The loss trl's DPOTrainer computes for a batch through the margin hook is MODPO's loss
    (ZHZisZZ/modpo, MODPOTrainer.modpo_loss) on the same log-probs."""
    import torch
    import torch.nn.functional as F
    from peft import LoraConfig
    from trl import DPOConfig

    from paretohqd.policy import Policy, load_causal_lm
    from paretohqd.train.dpo import dpo_trainer, pair_dataset

    rng = np.random.default_rng(1)
    n, w, beta = 6, np.asarray(weights), 0.1
    pairs = pd.DataFrame({
        "prompt": [f"\n\nHuman: {' '.join(rng.choice(WORDS, 4))}?\n\nAssistant:" for _ in range(n)],
        "chosen": [" ".join(rng.choice(WORDS, int(rng.integers(2, 8)))) for _ in range(n)],
        "rejected": [" ".join(rng.choice(WORDS, int(rng.integers(2, 8)))) for _ in range(n)]})
    m_chosen, m_rejected = rng.normal(1.0, 1.0, (n, len(w) - 1)), rng.normal(-1.0, 1.0, (n, len(w) - 1))
    pairs["chosen_margin"], pairs["rejected_margin"] = modpo_margins(m_chosen, m_rejected, w)

    model, tokenizer = load_causal_lm(str(tiny_policy))
    policy = Policy(model, tokenizer)
    args = DPOConfig(output_dir=str(tmp_path), beta=modpo_beta(beta, w), loss_type=[loss_type],
                     per_device_train_batch_size=n, precompute_ref_log_probs=precompute, max_length=64, bf16=False,
                     activation_checkpointing=False, use_cpu=True, report_to="none")
    dataset = pair_dataset(policy, pairs, 64)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = dpo_trainer(model, tokenizer, args, dataset, lora)
    torch.manual_seed(0)
    with torch.no_grad():  # move the policy away from the reference, so that the beta term counts too
        for name, parameter in trainer.model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.5)
    batch = next(iter(trainer.get_train_dataloader()))  # every pair: the mean does not depend on their order
    assert len(batch["input_ids"]) == 2 * n
    loss = trainer.compute_loss(trainer.model, batch)

    rows = [dataset[i] for i in range(n)]

    def logps(model):
        return {side: torch.stack([_sequence_logp(model, r["prompt_ids"], r[f"{side}_ids"]) for r in rows])
                for side in ("chosen", "rejected")}

    with torch.no_grad():
        policy_logps = logps(trainer.model)
        with trainer.model.disable_adapter():
            ref_logps = logps(trainer.model)
    w_t, m_w, m_l = (torch.tensor(x, dtype=torch.float64) for x in (w, m_chosen, m_rejected))

    def modpo_loss(w0, margin_sign=1.0):
        chosen = (1 / w0) * (beta * (policy_logps["chosen"] - ref_logps["chosen"]) - margin_sign * m_w @ w_t[1:])
        rejected = (1 / w0) * (beta * (policy_logps["rejected"] - ref_logps["rejected"])
                               - margin_sign * m_l @ w_t[1:])
        logits = chosen - rejected
        return (-F.logsigmoid(logits) if loss_type == "sigmoid" else torch.relu(1 - logits)).mean()

    loss = float(loss.detach())
    assert loss == pytest.approx(float(modpo_loss(w_t[0])), rel=1e-5, abs=1e-6)
    # The comparison has teeth: the policy is not the reference, and each plausible slip gives another number.
    assert (policy_logps["chosen"] - ref_logps["chosen"]).abs().min() > 1e-2
    for wrong in (modpo_loss(w_t[0], margin_sign=-1.0), modpo_loss(w_t[0], margin_sign=0.0), modpo_loss(1.0)):
        assert abs(loss - float(wrong)) > 1e-2


def test_modpo_weights_raise_a_zero_w0_to_the_floor_and_margins_can_be_std_scaled():
    np.testing.assert_allclose(modpo_weights([0.0, 1.0], 0.05), [0.05, 0.95])
    np.testing.assert_allclose(modpo_weights([0.0, 0.25, 0.75], 0.1), [0.1, 0.225, 0.675])
    np.testing.assert_allclose(modpo_weights([0.3, 0.7], 0.05), [0.3, 0.7])
    scores = pd.DataFrame({"a": [0.0, 10.0, 20.0], "b": [1.0, 2.0, 3.0], "c": [5.0, 5.0, 5.0]})
    np.testing.assert_allclose(margin_rewards(scores, ["a", "b"], "raw"), scores[["a", "b"]].to_numpy())
    scaled = margin_rewards(scores, ["a", "b", "c"], "std")
    np.testing.assert_allclose(scaled[:, :2].std(axis=0), [1.0, 1.0])  # one unit per objective
    np.testing.assert_allclose(scaled[:, 2], 5.0)  # a constant objective is left as it is (no division by 0)


# --- pairs ----------------------------------------------------------------------------------------------------

def test_pairs_are_ordered_by_each_objective_and_ties_left_out():
    scores = pd.DataFrame({"id": ["a", "b", "c", "d", "e", "f"], "prompt": ["p", "p", "q", "q", "r", "r"],
                           "response": ["A", "B", "C", "D", "E", "F"],
                           "x": [1.0, 2.0, 5.0, 3.0, 1.0, 1.0], "y": [9.0, 0.0, 0.0, 4.0, 2.0, 3.0]})
    by_x = preference_pairs(scores, "x")
    assert list(zip(by_x["chosen"], by_x["rejected"])) == [("B", "A"), ("C", "D")]  # r: a tie on x
    by_y = preference_pairs(scores, "y")
    assert list(zip(by_y["chosen"], by_y["rejected"])) == [("A", "B"), ("D", "C"), ("F", "E")]
    assert list(by_y["chosen_row"]) == [0, 3, 5] and list(by_y["rejected_row"]) == [1, 2, 4]


def test_without_pairs_two_responses_to_one_prompt_make_a_pair():
    prompts = ["p", "q", "p", "r", "q", "p", "s", "s", "s", "s"]
    samples = pd.DataFrame({"id": [f"i{k}" for k in range(10)], "prompt": prompts, "response": list("abcdefghij")})
    first, second = candidate_pairs(samples)
    # p: rows 0, 2, 5 -> (0, 2), its third left out; q: (1, 4); r alone; s: (6, 7) and (8, 9)
    assert list(zip(first, second)) == [(0, 2), (1, 4), (6, 7), (8, 9)]


def test_hh_rlhf_pairs_stay_within_their_source_file(tmp_path):
    def dialogue(question, reply):
        return f"\n\nHuman: {question}\n\nAssistant: {reply}"

    for name, (good, bad) in {"a": ("yes a", "no a"), "b": ("yes b", "no b")}.items():
        rows = [{"chosen": dialogue("same question?", good), "rejected": dialogue("same question?", bad)},
                {"chosen": dialogue(f"only in {name}?", good), "rejected": dialogue("another prompt?", bad)}]
        pd.DataFrame(rows).to_json(tmp_path / f"{name}.jsonl", orient="records", lines=True)
    samples = load_data([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")], adapter="hh_rlhf").samples
    # Both files number their pairs from 0 and share a prompt: interleave them so that only the source can tell.
    samples = samples.iloc[[0, 4, 1, 5, 2, 6, 3, 7]].reset_index(drop=True)
    samples["score"] = np.where(samples["label"] == "chosen", 1.0, 0.0)
    pairs = preference_pairs(samples, "score")
    assert list(zip(pairs["chosen_id"], pairs["rejected_id"])) == [("a:0:chosen", "a:0:rejected"),
                                                                  ("b:0:chosen", "b:0:rejected")]
    # pair 1's two replies answer different prompts: no comparison, no pair


# --- whole runs -----------------------------------------------------------------------------------------------

def write_pairs_config(tmp_path, policy, method, run_name="run", **sections):
    """Twelve prompts with two responses each, two text objectives, a three-preference grid."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        question = " ".join(rng.choice(WORDS, 5))
        rows += [{"id": f"s{i}_{j}", "prompt": f"\n\nHuman: {question}?\n\nAssistant:",
                  "response": " ".join(rng.choice(WORDS, int(rng.integers(1, 12))))} for j in range(2)]
    pd.DataFrame(rows).to_json(tmp_path / "pairs.jsonl", orient="records", lines=True)
    pd.DataFrame({"prompt": [f"\n\nHuman: {w} please?\n\nAssistant:" for w in ("cat", "bread", "tea")]}).to_json(
        tmp_path / "test.jsonl", orient="records", lines=True)
    config = {
        "output_dir": str(tmp_path / run_name), "seed": 0, "method": method,
        "data": {"source": str(tmp_path / "pairs.jsonl"), "id_column": "id"},
        "objectives": [{"name": "brevity", "builtin": "conciseness"},
                       {"name": "vowels", "type": "callable", "callable": "tests.helpers_objectives:vowel_share"}],
        "preferences": {"grid": "explicit", "weights": [[1, 0], [0.3, 0.7], [0, 1]]},
        "model": {"name_or_path": str(policy)},
        "train": {"sft": {"max_steps": 2, "per_device_train_batch_size": 4, "max_length": 64, "logging_steps": 1},
                  "lora": {"r": 4, "lora_alpha": 8}},
        "modpo": {"dpo": {"max_steps": 2, "learning_rate": 0.05, "lr_scheduler_type": "constant",
                          "warmup_steps": 0}},
        "evaluate": {"source": str(tmp_path / "test.jsonl"), "sampling": {"max_new_tokens": 8, "batch_size": 4}},
        **sections,
    }
    path = tmp_path / f"{run_name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_modpo_runs_end_to_end_and_trains_only_the_adapters(tiny_policy, tmp_path, capsys):
    from safetensors.torch import load_file

    base_file = tiny_policy / "model.safetensors"
    base_digest = hashlib.sha256(base_file.read_bytes()).hexdigest()
    config_path = write_pairs_config(tmp_path, tiny_policy, "modpo")
    assert main(["run", str(config_path)]) == 0
    run = tmp_path / "run"
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["method"] == "MODPO"
    assert [p["model"] for p in metrics["preferences"]] == ["pref_00", "pref_01", "pref_02"]
    assert [p["weights"] for p in metrics["preferences"]] == [[1.0, 0.0], [0.3, 0.7], [0.0, 1.0]]
    assert "train_modpo" in metrics["wall_seconds"]
    for pref, beta in (("pref_00", 0.1), ("pref_01", 0.1 / 0.3), ("pref_02", 0.1 / 0.05)):
        folder = run / "models" / pref / "stage1"
        assert (folder / ".complete").exists()
        training = json.loads((folder / "training.json").read_text())
        assert training["trainer"] == "dpo" and training["margins"] and training["steps"] == 2
        assert training["global_batch_size"] == 4  # train.sft's batch size: a field SFT and DPO share
        assert training["beta"] == pytest.approx(beta)  # MODPO's beta / w_0; w_0 = 0 trains at modpo.min_weight
        assert training["ranks"][0]["micro_batches"] == 2  # reference forwards are not counted as batches
        adapter = load_file(folder / "adapter_model.safetensors")
        assert adapter and all("lora_" in key for key in adapter)  # only the adapter was trained and saved
        assert any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)  # lora_B starts at zero
    card = (run / "models" / "pref_02" / "stage1" / "README.md").read_text()
    assert "weights trained: brevity 0.05, vowels 0.95" in card
    assert hashlib.sha256(base_file.read_bytes()).hexdigest() == base_digest

    units = {u.name: u for u in build_plan(get_method("modpo"), load_config(config_path)).units}
    assert units["train/modpo/pref_02"].settings["weights"] == pytest.approx([0.05, 0.95])
    assert units["train/modpo/pref_02"].settings["dpo"]["beta"] == 0.1
    capsys.readouterr()
    assert main(["run", str(config_path)]) == 0  # a rerun trains nothing
    assert "train_modpo: done already" in capsys.readouterr().out


def test_rewarded_soups_with_dpo_ingredients(tiny_policy, tmp_path):
    config_path = write_pairs_config(tmp_path, tiny_policy, "soups", soups={"ingredient": "dpo"})
    assert main(["run", str(config_path)]) == 0
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert metrics["method"] == "Rewarded Soups" and len(metrics["preferences"]) == 3
    for j in range(2):
        training = json.loads((tmp_path / "run" / "models" / f"objective_{j:02d}" / "stage1" /
                               "training.json").read_text())
        assert training["trainer"] == "dpo" and not training["margins"] and training["beta"] == 0.1

    dpo_config = load_config(config_path)
    sft_config = load_config(config_path, overrides=["--soups.ingredient", "sft"])
    dpo_units = {u.name: u for u in build_plan(get_method("soups"), dpo_config).units}
    sft_units = {u.name: u for u in build_plan(get_method("soups"), sft_config).units}
    for j in range(2):
        name = f"train/soups/objective_{j:02d}"
        assert (dpo_units[name].kind, sft_units[name].kind) == ("dpo", "sft")
        assert dpo_units[name].key != sft_units[name].key
        assert set(sft_units[name].settings) == {"sft", "lora", "model", "seed", "objective", "k", "truncated_replies"}


@pytest.mark.parametrize("method, override, message", [
    ("modpo", ["--modpo.dpo.bta", "0.1"], "modpo.dpo.bta is not a trl.DPOConfig field; did you mean 'beta'?"),
    ("modpo", ["--modpo.dpo.loss_type", "[ipo]"], "modpo.dpo.loss_type must be sigmoid or hinge for a margin"),
    ("modpo", ["--modpo.dpo.output_dir", "x"], "modpo.dpo.output_dir is set by the run itself"),
    ("modpo", ["--modpo.objective", "nope"], "modpo.objective 'nope' is not one of the objectives"),
    ("soups", ["--soups.ingredient", "dpo", "--soups.dpo.lr_scheduler_type", "bogus"],
     "train.sft + modpo.dpo + soups.dpo is not a valid trl.DPOConfig: bogus"),
    ("modpo", ["--data.source", "UNPAIRED"], "MODPO trains on preference pairs, but the data has none"),
])
def test_bad_dpo_settings_are_one_sentence_before_any_work(tiny_policy, tmp_path, capsys, method, override,
                                                           message):
    config_path = write_pairs_config(tmp_path, tiny_policy, method)
    if "UNPAIRED" in override:
        pd.read_json(tmp_path / "pairs.jsonl", lines=True).drop_duplicates("prompt").to_json(
            tmp_path / "unpaired.jsonl", orient="records", lines=True)
        override = [o.replace("UNPAIRED", str(tmp_path / "unpaired.jsonl")) for o in override]
    assert main(["run", str(config_path), *override]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "scores").exists() and not (tmp_path / "run" / "models").exists()
