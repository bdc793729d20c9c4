import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["PARETOHQD_PROGRESS"] = "0"

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

EXACT_THREADS = 1
"""The torch thread count of every computation that a test compares bit for bit with one made elsewhere (another
process, a Ray worker, a unit): set on both sides, never inherited. A sum over threads adds in another order with
another count, and which results then differ in their last bits depends on the processor's kernels."""


def torch_threads(count: int = EXACT_THREADS):
    """Run the block with ``count`` torch threads, then restore the caller's."""
    from paretohqd.env import torch_threads as held

    return held(count)


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "hh-rlhf").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (the workplace's shared/data folder beside the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_reward_model(tmp_path_factory) -> Path:
    """A 2-layer GPT-2 sequence classifier with a word-level tokenizer that has no pad token of its own."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2ForSequenceClassification, PreTrainedTokenizerFast

    words = ["<unk>", "<eos>", "the", "a", "cat", "dog", "sat", "on", "mat", "is", "good", "bad", "kind", "rude",
             "help", "you", "i", "can", "not", "will", "yes", "no", "please", "thanks", "hello", "how", "what", "why",
             "human", "assistant", ":", "?", ".", ","]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", eos_token="<eos>",
                                        bos_token="<eos>")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(words), n_positions=64, n_embd=32, n_layer=2, n_head=2, num_labels=1,
                        pad_token_id=None)
    model = GPT2ForSequenceClassification(config)
    path = tmp_path_factory.mktemp("tiny_rm")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


TOKENIZER_WORDS = ("the cat sat on a mat and it was good so we all went home to eat some bread with tea please "
                   "{turns} ? . , yes no i you can not help how what why hello")


def word_level_backend(special: list[str], words: str):
    """A whitespace-and-punctuation word-level tokenizer over ``special`` + ``words`` (ids in that order)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(special + words.split())}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                     pre_tokenizers.Punctuation()])
    return backend


def tiny_chat_tokenizer():
    """A word-level tokenizer with ChatML turns (the embedded SmolLM2's format) and a ~100-word vocabulary, so a
    random policy built on it trains and samples in milliseconds."""
    from transformers import PreTrainedTokenizerFast

    backend = word_level_backend(["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                 TOKENIZER_WORDS.format(turns="human assistant user system"))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", bos_token="<|im_start|>",
                                        additional_special_tokens=["<|im_start|>"])
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def tiny_plain_tokenizer():
    """A word-level tokenizer like a base model's (Llama-2-7b-hf): no chat template, BOS put before every text by
    the tokenizer itself."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    backend = word_level_backend(["<unk>", "<s>", "</s>", "<pad>"], TOKENIZER_WORDS.format(turns="Human Assistant :"))
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")


def tiny_llama(tokenizer, path: Path) -> Path:
    """A 2-layer Llama with random weights (seed 0) and ``tokenizer``, saved in ``path``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory) -> Path:
    """A 2-layer Llama with random weights and a tiny ChatML tokenizer."""
    return tiny_llama(tiny_chat_tokenizer(), tmp_path_factory.mktemp("tiny_policy"))


@pytest.fixture(scope="session")
def tiny_plain_policy(tmp_path_factory) -> Path:
    """The tiny Llama with a base model's tokenizer (no chat template)."""
    tokenizer = tiny_plain_tokenizer()
    assert tokenizer.chat_template is None
    return tiny_llama(tokenizer, tmp_path_factory.mktemp("tiny_plain_policy"))


@pytest.fixture(scope="session")
def served_run(tiny_policy, tmp_path_factory) -> Path:
    """A finished tiny ParetoHqD run that serving and export read: 3 preferences, stage 1 only, its two midpoints
    served by interpolation and evaluated. Nothing may write into it."""
    import paretohqd

    from .test_pipeline import write_run_config

    tmp = tmp_path_factory.mktemp("served_run")
    path = write_run_config(tmp, tiny_policy, stage2__enabled=False, evaluate__served="midpoints")
    paretohqd.run(paretohqd.load_config(path), log=lambda *_: None)
    return tmp / "run"
