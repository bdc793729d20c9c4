"""Generation throughput: batched HF generation against one prompt at a time, and with --backend vllm against vLLM.

    python bench/generation_speed.py [--model embedded:smollm2-135m-instruct] [--num-prompts 32]
        [--max-new-tokens 64] [--batch-size 16] [--dtype bfloat16] [--threads N] [--backend hf|vllm]

One model, one prompt set (the embedded demo prompts) and one sampling setting for every row. "HF batched" is the
pipeline's ``generate_responses`` (length-sorted, left-padded batches); "HF one at a time" is the same call with
batch size 1, which is how RiC's code generates. ``--backend vllm`` (a GPU and ``pip install 'paretohqd[vllm]'``)
adds the vLLM backend on the same prompts, one engine call. Throughput counts the tokens of the generated responses
(the policy's tokenizer); engine start-up and a short warm-up are not timed. The last line is
``batched_vs_sequential=<ratio>``: HF batched tokens/s over HF one-at-a-time tokens/s.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pandas as pd

from paretohqd.config import ModelConfig, SamplingConfig
from paretohqd.data import load_prompts
from paretohqd.policy import EMBEDDED_DEFAULT, generate_responses, load_policy

SEED = 0


def demo_prompts(count: int) -> list[str]:
    """The embedded demo's held-out questions, then its training prompts (140 in all)."""
    prompts = pd.concat([load_prompts("embedded:demo-test", prompt_column="question"),
                         load_prompts("embedded:demo")])["prompt"].drop_duplicates().tolist()
    if count > len(prompts):
        raise SystemExit(f"--num-prompts {count}: the embedded demo has {len(prompts)} prompts")
    return prompts[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=EMBEDDED_DEFAULT)
    parser.add_argument("--num-prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--backend", choices=("hf", "vllm"), default="hf")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.5,
                        help="vLLM's share of the GPU (the HF model is freed before the engine starts)")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model_config = ModelConfig(name_or_path=args.model, dtype=args.dtype, device=args.device)
    prompts = demo_prompts(args.num_prompts)
    sampling = SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=1.0, top_p=0.9, top_k=0,
                              batch_size=args.batch_size)
    policy = load_policy(model_config)
    tokenizer = policy.tokenizer

    def tokens(responses: list[str]) -> int:
        return sum(map(len, tokenizer(responses, add_special_tokens=False)["input_ids"]))

    def timed(generate) -> tuple[float, int]:
        started = time.perf_counter()
        responses = generate()
        return time.perf_counter() - started, tokens(responses)

    print(f"{args.model} ({args.dtype}, {policy.device}, {torch.get_num_threads()} threads): {len(prompts)} demo "
          f"prompts, up to {args.max_new_tokens} new tokens, temperature 1.0, top_p 0.9")
    generate_responses(policy, prompts[:2], dataclasses.replace(sampling, max_new_tokens=4), SEED)  # warm-up
    rows = {f"HF batched ({args.batch_size})": timed(lambda: generate_responses(policy, prompts, sampling, SEED).texts),
            "HF one at a time": timed(lambda: generate_responses(
                policy, prompts, dataclasses.replace(sampling, batch_size=1), SEED).texts)}
    if args.backend == "vllm":
        rows["vLLM (one call)"] = time_vllm(policy, model_config, prompts, sampling, args.gpu_memory_utilization,
                                            tokens)
    print(f"{'generation':<22} {'seconds':>9} {'tokens':>8} {'tokens/s':>10}")
    rates = {}
    for name, (seconds, count) in rows.items():
        rates[name] = count / seconds
        print(f"{name:<22} {seconds:>9.2f} {count:>8d} {rates[name]:>10.1f}")
    batched, sequential = list(rates.values())[:2]
    if args.backend == "vllm":
        print(f"vllm_vs_batched={rates['vLLM (one call)'] / batched:.2f}")
    print(f"batched_vs_sequential={batched / sequential:.2f}")
    return 0


def time_vllm(policy, model_config, prompts, sampling, gpu_memory_utilization, tokens) -> tuple[float, int]:
    import torch

    from paretohqd.policy.vllm_backend import ModelPrompts, generate_with_vllm, prepare_models, release_engine

    policy.model = None  # the engine needs the GPU memory the HF model holds
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    [base] = prepare_models([((), None, None)], model_config)
    engine_args = {"gpu_memory_utilization": gpu_memory_utilization}
    warm_up = dataclasses.replace(sampling, max_new_tokens=4)
    generate_with_vllm([ModelPrompts(base, prompts[:2], warm_up, SEED)], model_config, engine_args)  # starts it
    started = time.perf_counter()
    [answers] = generate_with_vllm([ModelPrompts(base, prompts, sampling, SEED)], model_config, engine_args)
    seconds = time.perf_counter() - started
    release_engine()
    return seconds, tokens(answers.responses)


if __name__ == "__main__":
    sys.exit(main())
