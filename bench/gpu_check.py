"""What the paper's recipe costs on a GPU, measured with torch, transformers and peft alone (what a bare GPU machine
has), and whether batched generation there is what one-at-a-time generation is.

    python bench/gpu_check.py                 # on a GPU: the real shapes (Llama-2-7B, GPT-2-large)
    python bench/gpu_check.py --dry-run       # anywhere: the same code on shrunken shapes (the test suite runs it)

On a GPU machine that has torch, transformers, peft and accelerate but not the project (``make gpu-wheels`` here
first, then carry ``.gpu_wheels`` there):

    pip install --no-index --no-deps --target /tmp/site .gpu_wheels/*.whl && export PYTHONPATH=/tmp/site
    python bench/gpu_check.py --json gpu_check.json

Measures, on randomly initialised models of the paper's shapes (no download):

- SFT seconds per optimizer step and peak memory for a Llama-2-7B-shaped policy in bf16 with LoRA r 64 on q_proj
  and v_proj (``recipes/hh_rlhf/paretohqd.yaml``), batch 8 x 512 tokens, with and without activation checkpointing;
- HF generation seconds per batch of 64 prompts x 128 new tokens (left padding, sampling);
- reward scoring samples per second for a GPT-2-large-shaped sequence classifier (batch 64, 512 tokens);
- that left-padded batched greedy generation equals one-at-a-time greedy, token for token;

and prints the paper recipe's GPU-hours from those rates beside the paper's 55.87: training (11 preferences x
(200 + 100) steps), stage-2 generation (3 generators x 10,000 replies), scoring (the ~320,000 offline samples and the
30,000 generated ones, by 2 reward models) and, on a separate line, evaluation (12 models x 2,138 test prompts,
generated and scored). Which card, the batching and whether evaluation is included are printed with it.

Then it runs the whole ParetoHqD pipeline end to end (scoring, selection, stage 1, stage 2's regeneration and
rescoring, evaluation, the report) on a randomly initialised SmolLM2-135M-shaped policy with ``model.device: auto``
and two GPT-2-shaped reward models on the same device in bf16 (random weights: this checks that every unit runs
where it should and is charged right, not what it learns), on the embedded demo data, and prints its units, wall
time and GPU-seconds. A bare GPU machine lacks some of the project's dependencies: ``make gpu-wheels`` gathers them
and the project's own wheel into ``.gpu_wheels/`` (under 64 MiB), which the machine installs with
``pip install --no-index --no-deps``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

PAPER_GPU_HOURS = 55.87
RECIPE = {"preferences": 11, "stage1_steps": 200, "stage2_steps": 100, "generators": 3, "stage2_replies": 10_000,
          "offline_samples": 320_000, "reward_models": 2, "test_prompts": 2_138, "evaluated_models": 12}
FULL = {"policy": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=32, vocab_size=32000),
        "reward": dict(n_embd=1280, n_layer=36, n_head=20, vocab_size=50257),
        "batch": 8, "length": 512, "gen_batch": 64, "new_tokens": 128, "prompt_tokens": 128, "score_batch": 64,
        "score_length": 512, "lora_r": 64}
SHRUNK = {"policy": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=4, vocab_size=512),
          "reward": dict(n_embd=64, n_layer=2, n_head=4, vocab_size=512),
          "batch": 2, "length": 32, "gen_batch": 4, "new_tokens": 8, "prompt_tokens": 8, "score_batch": 4,
          "score_length": 32, "lora_r": 4}
PIPELINE_POLICY = {  # SmolLM2-135M's shape (HuggingFaceTB/SmolLM2-135M config.json)
    True: dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
               num_key_value_heads=1, vocab_size=0),
    False: dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                num_key_value_heads=3, vocab_size=49152)}
PIPELINE_REWARD = {True: dict(n_embd=32, n_layer=2, n_head=2), False: dict(n_embd=768, n_layer=12, n_head=12)}
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


VERSIONS_REPORTED = ("torch", "transformers", "peft", "accelerate", "trl", "datasets", "pyarrow", "paretohqd")


def installed_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None


def policy_model(shape: dict, device: torch.device, dtype: torch.dtype):
    """A randomly initialised Llama of ``shape``, made in ``dtype`` on ``device`` (a 7B one never in float32)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(0)
    config = LlamaConfig(**shape["policy"], max_position_embeddings=4096, pad_token_id=0, bos_token_id=1,
                         eos_token_id=2)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(config, dtype=dtype)


def sft_step_seconds(shape: dict, device: torch.device, dtype: torch.dtype, checkpointing: bool,
                     steps: int) -> tuple[float, float | None]:
    """Seconds per optimizer step (after one warm-up step) and peak memory, LoRA on q_proj and v_proj."""
    from peft import LoraConfig, get_peft_model

    model = policy_model(shape, device, dtype)
    if checkpointing:
        # transformers 5.2x renamed it; the GPU machine's may be older
        enable = getattr(model, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=shape["lora_r"], lora_alpha=2 * shape["lora_r"],
                                             target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(3, shape["policy"]["vocab_size"], (shape["batch"], shape["length"]), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps + 1):
        synchronise(device)
        began = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronise(device)
        times.append(time.perf_counter() - began)
    memory = peak_memory_gb(device)
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return sum(times[1:]) / steps, memory


def left_padded_prompts(shape: dict, device: torch.device, count: int):
    """(prompts, their left-padded batch, its attention mask): random token prompts of differing lengths."""
    generator = torch.Generator().manual_seed(1)
    lengths = torch.randint(shape["prompt_tokens"] // 2, shape["prompt_tokens"] + 1, (count,), generator=generator)
    prompts = [torch.randint(3, shape["policy"]["vocab_size"], (int(n),), generator=generator) for n in lengths]
    width = int(lengths.max())
    ids = torch.zeros(count, width, dtype=torch.long)
    mask = torch.zeros(count, width, dtype=torch.long)
    for row, prompt in enumerate(prompts):  # every prompt ends at the right edge
        ids[row, width - len(prompt):] = prompt
        mask[row, width - len(prompt):] = 1
    return prompts, ids.to(device), mask.to(device)


def generation_seconds(shape: dict, device: torch.device, dtype: torch.dtype, batches: int) -> float:
    """Seconds per sampled batch (top-p 0.9, every reply the full ``new_tokens``), after one warm-up batch."""
    model = policy_model(shape, device, dtype).eval()
    _, ids, mask = left_padded_prompts(shape, device, shape["gen_batch"])
    times = []
    with torch.no_grad():
        for _ in range(batches + 1):
            synchronise(device)
            began = time.perf_counter()
            model.generate(input_ids=ids, attention_mask=mask, do_sample=True, top_p=0.9, top_k=0,
                           max_new_tokens=shape["new_tokens"], min_new_tokens=shape["new_tokens"], pad_token_id=0)
            synchronise(device)
            times.append(time.perf_counter() - began)
    del model
    return sum(times[1:]) / batches


def batched_greedy_is_exact(device: torch.device, count: int = 8) -> bool:
    """Left-padded batched greedy generation against one prompt at a time, token for token, on a small policy in
    float32 (half-precision sums change with the batch's shape, so only float32 can be exact)."""
    shape = {**SHRUNK, "prompt_tokens": 16}
    model = policy_model(shape, device, torch.float32).eval()
    prompts, ids, mask = left_padded_prompts(shape, device, count)
    common = dict(do_sample=False, max_new_tokens=16, min_new_tokens=16, pad_token_id=0)
    with torch.no_grad():
        batched = model.generate(input_ids=ids, attention_mask=mask, **common)[:, ids.shape[1]:]
        alone = [model.generate(input_ids=p[None].to(device), **common)[0, len(p):] for p in prompts]
    return all(torch.equal(batched[row], alone[row]) for row in range(count))


def scoring_rate(shape: dict, device: torch.device, dtype: torch.dtype, batches: int) -> float:
    from transformers import AutoModelForSequenceClassification, GPT2Config

    torch.manual_seed(0)
    config = GPT2Config(**shape["reward"], n_positions=1024, num_labels=1, pad_token_id=0, bos_token_id=1,
                        eos_token_id=2)
    with torch.device(device):
        model = AutoModelForSequenceClassification.from_config(config, dtype=dtype).eval()
    ids = torch.randint(3, shape["reward"]["vocab_size"], (shape["score_batch"], shape["score_length"]),
                        device=device)
    times = []
    with torch.no_grad():
        for _ in range(batches + 1):
            synchronise(device)
            began = time.perf_counter()
            model(input_ids=ids)
            synchronise(device)
            times.append(time.perf_counter() - began)
    del model
    return shape["score_batch"] / (sum(times[1:]) / batches)


def recipe_hours(step_seconds: float, generation_seconds: float, samples_per_second: float, shape: dict) -> dict:
    """The paper recipe's GPU-hours at the measured rates (one GPU doing everything in turn)."""
    r = RECIPE
    training = r["preferences"] * (r["stage1_steps"] + r["stage2_steps"]) * step_seconds
    replies = r["generators"] * r["stage2_replies"]
    generating = replies / shape["gen_batch"] * generation_seconds
    scoring = (r["offline_samples"] + replies) * r["reward_models"] / samples_per_second
    evaluation_replies = r["evaluated_models"] * r["test_prompts"]
    evaluation = (evaluation_replies / shape["gen_batch"] * generation_seconds
                  + evaluation_replies * r["reward_models"] / samples_per_second)
    hours = {"training": training / 3600, "stage2_generation": generating / 3600, "scoring": scoring / 3600}
    hours["total_without_evaluation"] = sum(hours.values())
    hours["evaluation"] = evaluation / 3600
    hours["total_with_evaluation"] = hours["total_without_evaluation"] + hours["evaluation"]
    return hours


def demo_words() -> list[str]:
    """Every word of the embedded demo data, in first-seen order (a tokenizer that covers it has no unknowns)."""
    import re

    from paretohqd.data import EMBEDDED_DATASETS

    words: dict[str, None] = {}
    for source in EMBEDDED_DATASETS.values():
        words.update(dict.fromkeys(re.findall(r"\w+|[^\w\s]", Path(source).read_text())))
    return list(words)


def word_level_tokenizer(vocab_size: int, chat: bool):
    """A word-level tokenizer over the demo's words, filled up to ``vocab_size`` (0: no filling), with SmolLM2's
    special tokens and, where ``chat``, its ChatML template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocabulary = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>", *demo_words()]
    vocabulary += [f"w{i}" for i in range(vocab_size - len(vocabulary))]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocabulary)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<|im_start|>",
                                        eos_token="<|im_end|>" if chat else "<|endoftext|>",
                                        pad_token="<|endoftext|>")
    if chat:
        tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def pipeline_models(folder: Path, dry_run: bool) -> tuple[Path, list[Path], int]:
    """A random SmolLM2-135M-shaped policy and two random GPT-2-shaped reward models, saved with tokenizers; the
    policy's parameter count."""
    from transformers import GPT2Config, GPT2ForSequenceClassification, LlamaConfig, LlamaForCausalLM

    shape = PIPELINE_POLICY[dry_run]
    tokenizer = word_level_tokenizer(shape["vocab_size"], chat=True)
    torch.manual_seed(0)
    config = LlamaConfig(**{**shape, "vocab_size": len(tokenizer)}, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    policy = LlamaForCausalLM(config)
    parameters = policy.num_parameters()
    policy.save_pretrained(folder / "policy")
    tokenizer.save_pretrained(folder / "policy")
    rewards = []
    reward_tokenizer = word_level_tokenizer(0, chat=False)
    for seed, name in enumerate(("reward_a", "reward_b")):
        torch.manual_seed(seed + 1)
        config = GPT2Config(**PIPELINE_REWARD[dry_run], vocab_size=len(reward_tokenizer), n_positions=1024,
                            num_labels=1, pad_token_id=reward_tokenizer.pad_token_id,
                            bos_token_id=reward_tokenizer.bos_token_id, eos_token_id=reward_tokenizer.eos_token_id)
        GPT2ForSequenceClassification(config).save_pretrained(folder / name)
        reward_tokenizer.save_pretrained(folder / name)
        rewards.append(folder / name)
    return folder / "policy", rewards, parameters


def pipeline_config(folder: Path, policy: Path, rewards: list[Path], device: torch.device) -> dict:
    """The demo's pipeline at a few steps per unit, every model on ``device`` (the policy through ``auto``)."""
    cuda = device.type == "cuda"
    sampling = {"max_new_tokens": 32, "batch_size": 16}
    return {
        "output_dir": str(folder / "run"), "method": "paretohqd", "seed": 0,
        "data": {"source": "embedded:demo", "id_column": "id"},
        "objectives": [{"name": path.name, "type": "hf", "model": str(path), "device": device.type,
                        "dtype": "bfloat16" if cuda else "float32", "batch_size": 64, "max_length": 256}
                       for path in rewards],
        "preferences": {"grid": "linear", "n_points": 3},
        "select": {"k": 24},
        "model": {"name_or_path": str(policy), "device": "auto", "max_prompt_length": 128},
        "train": {"sft": {"max_steps": 4, "per_device_train_batch_size": 4, "max_length": 256, "bf16": cuda,
                          "logging_steps": 4},
                  "lora": {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0}},
        "stage2": {"num_prompts": 8, "sft": {"max_steps": 2}, "sampling": sampling},
        "evaluate": {"source": "embedded:demo-test", "prompt_column": "question", "every_nth": 4,
                     "sampling": sampling},
        "execution": {"executor": "local"},
    }


def pipeline_end_to_end(device: torch.device, dry_run: bool) -> dict:
    """The whole pipeline on random models (see the module's docstring); its units, seconds and GPU-seconds."""
    import os

    import yaml
    from transformers.utils import logging as transformers_logging

    import paretohqd

    os.environ["PARETOHQD_PROGRESS"] = "0"  # the figures above stay in the output's tail
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    transformers_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as scratch:
        folder = Path(scratch)
        policy, rewards, parameters = pipeline_models(folder, dry_run)
        config_path = folder / "run.yaml"
        config_path.write_text(yaml.safe_dump(pipeline_config(folder, policy, rewards, device)))
        lines: list[str] = []
        began = time.perf_counter()
        try:
            metrics = paretohqd.run(paretohqd.load_config(str(config_path)), log=lines.append)
        except BaseException:
            print("\n".join(lines[-40:]))
            raise
        wall = time.perf_counter() - began
        manifest = json.loads((folder / "run" / "manifest.json").read_text())
    cost = metrics["cost"]
    stages = ("scoring", "training", "generation", "evaluation")
    return {"units": len(manifest["units"]), "wall_seconds": wall, "gpu_seconds": cost["total"]["gpu_seconds"],
            "gpu_seconds_by_stage": {name: cost[name]["gpu_seconds"] for name in stages},
            "hypervolume": metrics["hypervolume_minmax_run_worst"], "preferences": len(metrics["preferences"]),
            "policy_parameters": parameters}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="shrunken shapes, on whatever device there is")
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps (after one warm-up)")
    parser.add_argument("--batches", type=int, default=3, help="timed generation and scoring batches")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--no-pipeline", action="store_true", help="the rates only, not the pipeline end to end")
    args = parser.parse_args(argv)
    shape = SHRUNK if args.dry_run else FULL
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not args.dry_run and device.type != "cuda":
        raise SystemExit("no GPU here: the real shapes need one (--dry-run runs the shrunken ones anywhere)")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    versions = {name: installed_version(name) for name in VERSIONS_REPORTED}
    figures: dict = {"card": card, "dtype": str(dtype).removeprefix("torch."), "dry_run": args.dry_run,
                     "shapes": dict(shape), "versions": versions}
    print("versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()))
    for checkpointing in (True, False):
        name = f"sft_{'with' if checkpointing else 'without'}_checkpointing"
        try:
            seconds, memory = sft_step_seconds(shape, device, dtype, checkpointing, args.steps)
            figures[name] = {"seconds_per_step": seconds, "peak_memory_gb": memory}
        except torch.cuda.OutOfMemoryError:  # what activation checkpointing is on for above 1B parameters
            figures[name] = {"seconds_per_step": None, "peak_memory_gb": None, "out_of_memory": True}
            torch.cuda.empty_cache()
    figures["generation_seconds_per_batch"] = generation_seconds(shape, device, dtype, args.batches)
    figures["batched_greedy_equals_one_at_a_time"] = batched_greedy_is_exact(device)
    figures["scoring_samples_per_second"] = scoring_rate(shape, device, dtype, args.batches)
    step = figures["sft_with_checkpointing"]["seconds_per_step"]
    figures["recipe_gpu_hours"] = recipe_hours(step, figures["generation_seconds_per_batch"],
                                               figures["scoring_samples_per_second"], shape)
    hours = figures["recipe_gpu_hours"]
    print(f"card: {card} ({figures['dtype']}); SFT step {step:.3f} s with activation checkpointing, "
          f"{figures['sft_without_checkpointing']['seconds_per_step'] or float('nan'):.3f} s without "
          f"(peak {figures['sft_with_checkpointing']['peak_memory_gb']} / "
          f"{figures['sft_without_checkpointing']['peak_memory_gb']} GB); generation "
          f"{figures['generation_seconds_per_batch']:.3f} s per batch of {shape['gen_batch']} x {shape['new_tokens']}; "
          f"scoring {figures['scoring_samples_per_second']:.1f} samples/s; batched greedy = one at a time: "
          f"{figures['batched_greedy_equals_one_at_a_time']}")
    print(f"the paper's recipe at these rates, one GPU, HF generation at batch {shape['gen_batch']}: "
          f"{hours['total_without_evaluation']:.2f} GPU-hours without evaluation (training {hours['training']:.2f}, "
          f"stage-2 generation {hours['stage2_generation']:.2f}, scoring {hours['scoring']:.2f}), "
          f"{hours['total_with_evaluation']:.2f} with it; the paper reports {PAPER_GPU_HOURS}"
          + (" (shrunken shapes: these hours mean nothing)" if args.dry_run else ""))
    if not args.no_pipeline:
        run = figures["pipeline"] = pipeline_end_to_end(device, args.dry_run)
        by_stage = ", ".join(f"{name} {seconds:.0f}" for name, seconds in run["gpu_seconds_by_stage"].items())
        print(f"pipeline end to end on {card}: ParetoHqD, {run['preferences']} preferences, a random "
              f"{run['policy_parameters'] / 1e6:.1f}M-parameter policy: {run['units']} units in "
              f"{run['wall_seconds']:.0f} s, {run['gpu_seconds']:.0f} GPU-seconds ({by_stage}), hypervolume "
              f"{run['hypervolume']:.3f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    return figures


if __name__ == "__main__":
    main()
