"""What the paper's recipe costs on a GPU, measured with torch, transformers and peft alone (what a bare GPU machine
has), and whether batched generation there is what one-at-a-time generation is.

    python bench/gpu_check.py                 # on a GPU: the real shapes (Llama-2-7B, GPT-2-large)
    python bench/gpu_check.py --dry-run       # anywhere: the same code on shrunken shapes (the test suite runs it)

Measures, on randomly initialised models of the paper's shapes (no download):

- SFT seconds per optimizer step and peak memory for a Llama-2-7B-shaped policy in bf16 with LoRA r 64 on q_proj
  and v_proj (``recipes/hub_paper.yaml``), batch 8 x 512 tokens, with and without activation checkpointing;
- HF generation seconds per batch of 64 prompts x 128 new tokens (left padding, sampling);
- reward scoring samples per second for a GPT-2-large-shaped sequence classifier (batch 64, 512 tokens);
- that left-padded batched greedy generation equals one-at-a-time greedy, token for token;

and prints the paper recipe's GPU-hours from those rates beside the paper's 55.87: training (11 preferences x
(200 + 100) steps), stage-2 generation (3 generators x 10,000 replies), scoring (the ~320,000 offline samples and the
30,000 generated ones, by 2 reward models) and, on a separate line, evaluation (12 models x 2,138 test prompts,
generated and scored). Which card, the batching and whether evaluation is included are printed with it.
Not yet here: the whole pipeline end to end on the GPU (that needs the project's own dependencies on the machine).
"""

from __future__ import annotations

import argparse
import json
import time

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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="shrunken shapes, on whatever device there is")
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps (after one warm-up)")
    parser.add_argument("--batches", type=int, default=3, help="timed generation and scoring batches")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    shape = SHRUNK if args.dry_run else FULL
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not args.dry_run and device.type != "cuda":
        raise SystemExit("no GPU here: the real shapes need one (--dry-run runs the shrunken ones anywhere)")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    figures: dict = {"card": card, "dtype": str(dtype).removeprefix("torch."), "dry_run": args.dry_run,
                     "shapes": dict(shape)}
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
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    return figures


if __name__ == "__main__":
    main()
