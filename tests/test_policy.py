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
    with pytest.raises(UserError, match=r"model.device must be auto, cpu, cuda"):
        load_config(None, ["--data.source", "x", "--objectives", "[{name: a}]", "--model.device", "gpu"])


def test_a_reply_cut_at_the_token_limit_is_trained_without_its_end_of_turn():
    """A truncated reply teaches its words, never to stop where the limit fell; a finished one keeps its end."""
    tokenizer = tiny_chat_tokenizer()
    policy = Policy(None, tokenizer, max_prompt_length=64)
    prompt, reply = "\n\nHuman: how can i help?\n\nAssistant:", "we all went home to eat"
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    finished = policy.encode_for_training(prompt, reply, max_length=None)
    cut = policy.encode_for_training(prompt, reply, max_length=None, finished=False)
    trained = [t for t, bit in zip(cut["input_ids"], cut["completion_mask"]) if bit]
    assert end not in trained
    assert end in [t for t, bit in zip(finished["input_ids"], finished["completion_mask"]) if bit]
    assert finished["input_ids"][: len(cut["input_ids"])] == cut["input_ids"]  # the same words, no tail
    short = Policy(None, tokenizer, max_prompt_length=16).encode_for_training(LONG_PROMPT, LONG_REPLY, max_length=40,
                                                                              finished=False)
    assert len(short["input_ids"]) == 40 and end not in short["input_ids"][-3:]


def test_generation_marks_the_replies_that_hit_the_token_limit(tiny_policy, monkeypatch):
    """A reply is truncated when it neither ended its turn nor reached a turn marker before max_new_tokens: the
    model's continuations are fixed here, one per case."""
    from types import SimpleNamespace

    import torch

    from paretohqd.policy.generation import cut_at_turn, generate_responses, merge_responses

    policy = load_policy(ModelConfig(name_or_path=str(tiny_policy), device="cpu"))
    tokenizer = policy.tokenizer
    word = tokenizer.convert_tokens_to_ids
    end, pad = word("<|im_end|>"), tokenizer.pad_token_id
    continuations = {"cat": [word("we"), word("all"), end, pad],                  # ended its turn
                     "tea": [word("we"), word("all"), word("went"), word("home")]}      # hit the limit
    prompts = [f"\n\nHuman: {case}\n\nAssistant:" for case in continuations]

    def generate(input_ids, **kwargs):
        cases = [tokenizer.decode(row).split("user")[-1].split()[0] for row in input_ids]
        tail = torch.tensor([continuations[case] for case in cases])
        return torch.cat([input_ids, tail], dim=1)

    monkeypatch.setattr(policy.model, "generate", generate)
    sampling = SimpleNamespace(do_sample=False, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=4, batch_size=1)
    replies = generate_responses(policy, prompts, sampling, seed=0)
    assert replies.truncated == [False, True]
    assert replies.texts == ["we all", "we all went home"]
    # text that starts the next turn has ended the reply, whatever the token count
    assert cut_at_turn(" we all\n\nHuman: and you?") == ("we all", True)
    assert cut_at_turn("we all went home") == ("we all went home", False)
    merged = merge_responses([generate_responses(policy, prompts, sampling, seed=0, share=(rank, 2))
                              for rank in (0, 1)])
    assert merged == replies and replies.tokens == [3, 4]


def test_truncated_replies_are_trained_open_or_dropped_as_configured():
    import pandas as pd

    from paretohqd.train.sft import finished_replies

    samples = pd.DataFrame({"prompt": ["a", "b", "c"], "response": ["x", "y", "z"], "truncated": [False, True, None]})
    kept, finished = finished_replies(samples, "open")
    assert kept["response"].tolist() == ["x", "y", "z"] and finished == [True, False, True]
    kept, finished = finished_replies(samples, "drop")
    assert kept["response"].tolist() == ["x", "z"] and finished == [True, True]
    kept, finished = finished_replies(samples.drop(columns="truncated"), "drop")  # data that do not say: finished
    assert len(kept) == 3 and finished == [True, True, True]
