"""A base model without a chat template (Llama-2-7b-hf, the paper's policy): prompts stay in the plain HH-RLHF
format RiC and the paper use, BOS included, and every stage runs on it."""

import json

import pandas as pd
import pytest

from paretohqd.cli import main
from paretohqd.policy import Policy
from paretohqd.policy.load import check_model

from .test_pipeline import write_run_config

PROMPT = "\n\nHuman: the cat sat on a mat?\n\nAssistant:"


def test_the_plain_format_is_bos_prompt_reply_eos(tiny_plain_policy):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_plain_policy)
    policy = Policy(None, tokenizer, None, 384)
    assert policy.plain and policy.chat_text(PROMPT) == "<s>" + PROMPT
    assert policy.trainer_prompt(PROMPT) == PROMPT  # TRL's tokenizer call adds the BOS itself
    ids = tokenizer(policy.chat_text(PROMPT), add_special_tokens=False)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    encoded = policy.encode_for_training(PROMPT, "yes you can", max_length=None)
    reply = [i for i, m in zip(encoded["input_ids"], encoded["completion_mask"]) if m]
    assert encoded["input_ids"][: len(ids)] == ids and sum(encoded["completion_mask"]) == 4
    assert reply == tokenizer("yes you can", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    cut = policy.encode_for_training(PROMPT, "yes you can", max_length=None, finished=False)
    assert cut["input_ids"][-1] != tokenizer.eos_token_id and sum(cut["completion_mask"]) == 3  # never closed
    short = policy.encode_for_training(PROMPT, "yes you can", max_length=len(ids) + 2)
    assert short["input_ids"][-1] == tokenizer.eos_token_id and len(short["input_ids"]) == len(ids) + 2
    assert Policy(None, tokenizer, "be kind. ", 384).chat_text(PROMPT) == "<s>be kind. " + PROMPT


def test_check_model_says_which_format_a_run_will_use(tiny_plain_policy, tiny_policy, capsys, monkeypatch):
    from paretohqd.policy import load

    monkeypatch.setattr(load, "_checked", set())  # what this process checked already is said once, in that test
    monkeypatch.setattr(load, "_reported", set())
    check_model(str(tiny_plain_policy))
    check_model(str(tiny_policy))
    out = capsys.readouterr().out
    assert f"model {tiny_plain_policy}: prompts are written in the plain HH-RLHF format (<s> + " in out
    assert f"model {tiny_policy}: prompts are written in its chat template" in out


METHOD_BUDGETS = {
    "paretohqd": [],
    "ric": ["--ric.online.iterations", "1", "--ric.online.prompts", "4", "--ric.offline.sft.max_steps", "2",
            "--ric.online.sft.max_steps", "1"],
    "soups": [],
    "morlhf": ["--morlhf.rloo.max_steps", "1", "--morlhf.prompts", "4", "--morlhf.rloo.max_completion_length", "6"],
}


@pytest.mark.parametrize("method", sorted(METHOD_BUDGETS))
def test_a_whole_run_on_a_model_without_a_chat_template(tiny_plain_policy, tmp_path, method):
    """Stopped at its first training unit before (apply_chat_template raised); SFT, DPO and RLOO all train."""
    config = write_run_config(tmp_path, tiny_plain_policy)
    assert main(["run", str(config), "--method", method, *METHOD_BUDGETS[method]]) == 0
    run = tmp_path / "run"
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert len(metrics["preferences"]) == 3
    replies = pd.read_json(run / "generations" / "pref_00.jsonl", lines=True)
    assert len(replies) == 3 and not replies["response"].str.contains("<s>|</s>|Human:").any()


def test_dpo_trains_on_plain_format_pairs(tiny_plain_policy, tmp_path):
    from paretohqd.config import ModelConfig
    from paretohqd.train.dpo import train_dpo

    pairs = pd.DataFrame({"prompt": [PROMPT] * 4, "chosen": ["yes you can"] * 4, "rejected": ["no no no"] * 4})
    stats = train_dpo(pairs, tmp_path / "model", ModelConfig(name_or_path=str(tiny_plain_policy), device="cpu"),
                      {"max_steps": 1, "per_device_train_batch_size": 2, "max_length": 64, "bf16": False},
                      {"r": 2, "lora_alpha": 4}, 0, log=lambda *_: None, progress=False)
    assert stats["steps"] == 1 and (tmp_path / "model" / "adapter_model.safetensors").is_file()
