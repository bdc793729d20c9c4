"""The policy object: one truncation rule for training and generation, the end-of-turn token kept, placement."""

import pytest

from paretohqd.config import ModelConfig, load_config
from paretohqd.errors import UserError
from paretohqd.policy import Policy, load_policy, resolve_device

from .conftest import tiny_chat_tokenizer

LONG_PROMPT = "\n\nHuman: " + " ".join(["the cat sat on a mat"] * 20) + " ?\n\nAssistant:"
LONG_REPLY = " ".join(["we all went home to eat some bread with tea"] * 10)


def test_long_samples_keep_their_end_of_turn_token():
    tokenizer = tiny_chat_tokenizer()
    policy = Policy(None, tokenizer, max_prompt_length=16)
    encoded = policy.encode_for_training(LONG_PROMPT, LONG_REPLY, max_length=48)
    ids, mask = encoded["input_ids"], encoded["completion_mask"]
    assert len(ids) == 48 and len(mask) == 48
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    trained = [token for token, bit in zip(ids, mask) if bit]
    assert end in trained and trained[0] != end  # some of the reply, then the end of the turn
    assert tokenizer.decode(ids).count("<|im_start|> assistant") == 1  # the word-level tokenizer decodes with spaces


def test_training_and_generation_cut_the_prompt_by_one_rule():
    tokenizer = tiny_chat_tokenizer()
    policy = Policy(None, tokenizer, max_prompt_length=10)
    kept = policy.truncate_prompt(LONG_PROMPT)
    ids = tokenizer(LONG_PROMPT, add_special_tokens=False)["input_ids"]
    assert tokenizer(kept, add_special_tokens=False)["input_ids"] == ids[-10:]  # the end is what a reply answers
    generation_text = policy.chat_text(LONG_PROMPT)
    training_ids = policy.encode_for_training(LONG_PROMPT, "yes", max_length=None)["input_ids"]
    assert training_ids[: len(tokenizer(generation_text, add_special_tokens=False)["input_ids"])] == \
        tokenizer(generation_text, add_special_tokens=False)["input_ids"]


def test_short_samples_are_tokenized_as_trl_does(tiny_policy, tmp_path):
    """Within max_length the policy's sequences equal what trl.SFTTrainer makes of prompt-completion data."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from paretohqd.data import prompt_to_messages

    tokenizer = AutoTokenizer.from_pretrained(tiny_policy)
    prompt, reply = "\n\nHuman: how can i help?\n\nAssistant:", "yes you can"
    raw = datasets.Dataset.from_list([{"prompt": prompt_to_messages(prompt),
                                       "completion": [{"role": "assistant", "content": reply}]}])
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_policy), train_dataset=raw,
                         processing_class=tokenizer,
                         args=SFTConfig(output_dir=str(tmp_path), max_steps=1, use_cpu=True, report_to="none",
                                        activation_checkpointing=False, max_length=64))
    ours = Policy(None, tokenizer, max_prompt_length=64).encode_for_training(prompt, reply, max_length=64)
    assert trainer.train_dataset[0]["input_ids"] == ours["input_ids"]
    assert trainer.train_dataset[0]["labels"] == [t if m else -100 for t, m in zip(ours["input_ids"],
                                                                                    ours["completion_mask"])]


def test_device_placement(tiny_policy, monkeypatch):
    import torch

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else resolve_device("auto"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda" and resolve_device("cpu") == "cpu"
    monkeypatch.undo()
    policy = load_policy(ModelConfig(name_or_path=str(tiny_policy), device="cpu"))
    assert next(policy.model.parameters()).device.type == "cpu" and policy.device == "cpu"


def test_a_wrong_device_is_refused_when_the_config_loads():
    with pytest.raises(UserError, match="model.device must be auto, cpu, cuda"):
        load_config(None, ["--data.source", "x", "--objectives", "[{name: a}]", "--model.device", "gpu"])
