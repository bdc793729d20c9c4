"""ParetoHqD against RiC, SFT and Rewarded Soups on the HH-RLHF harmless/helpful recipe, then `paretohqd compare`.

    python bench/compare_methods.py [--out runs/bench] [--methods paretohqd ric sft soups]

Same base model (the embedded SmolLM2-135M-Instruct), reward models (the offline harmless/helpful heads), data
(../shared/data/hh-rlhf, 10% of prompts held out), test prompts, preferences and generation settings for every
method; training budgets are matched in optimizer steps (below) and cut to fit a 2-core CPU. Each method is a real
`paretohqd run` in its own run directory (resumable: rerun to continue); the scores are computed once and shared.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

PREFERENCES = 6
COMMON = [
    "--preferences.n_points", str(PREFERENCES),
    "--evaluate.num_prompts", "24",
    "--evaluate.sampling", "{temperature: 1.0, top_p: 0.9, top_k: 0, max_new_tokens: 64, batch_size: 24}",
    "--train.sft.per_device_train_batch_size", "4", "--train.sft.max_length", "192",
    "--train.sft.learning_rate", "0.0005", "--train.sft.logging_steps", "6", "--model.max_prompt_length", "128",
]
# Optimizer steps (batch 4): ParetoHqD 6 x (6 + 3) = 54; RiC 36 offline + 18 online = 54; Soups 2 x 27 = 54;
# SFT 54. Small on purpose: about 25 minutes for all four on 2 CPU cores.
METHODS = {
    "paretohqd": ["--select.k", "24", "--train.sft.max_steps", "6", "--stage2.sft.max_steps", "3",
                  "--stage2.num_prompts", "32",
                  "--stage2.sampling", "{temperature: 0.7, top_p: 0.9, top_k: 0, max_new_tokens: 64, batch_size: 16}"],
    # RiC's own LoRA (r 64) and learning-rate schedules are its section's defaults; this budget keeps the old
    # comparison's offline learning rate and LoRA so that only the step counts are cut.
    "ric": ["--ric.offline.sft", "{max_steps: 36, learning_rate: 0.0005, lr_scheduler_type: linear}",
            "--ric.offline.lora", "{r: 16, lora_alpha: 32}", "--ric.online.iterations", "1",
            "--ric.online.prompts", "32", "--ric.online.sft", "{max_steps: 18, learning_rate: 0.0001}",
            "--ric.online.mix_samples", "200",
            "--ric.online.sampling", "{temperature: 0.7, top_p: 0.9, top_k: 0, max_new_tokens: 64, batch_size: 16}"],
    "sft": ["--train.sft.max_steps", "54"],
    "soups": ["--soups.k", "108", "--train.sft.max_steps", "27"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    args = parser.parse_args()
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "hh_rlhf.yaml"
    out = Path(args.out)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PARETOHQD_PROGRESS": "0"}
    for method in args.methods:
        command = [sys.executable, "-m", "paretohqd.cli", "run", str(recipe), "--method", method,
                   "--output_dir", str(out / method), "--score.cache_dir", str(out / "score_cache"),
                   *COMMON, *METHODS[method]]
        started = time.perf_counter()
        print(f"== {method}: {' '.join(command[3:])}", flush=True)
        subprocess.run(command, check=True, env=env)
        print(f"== {method} finished in {time.perf_counter() - started:.0f} s", flush=True)
    runs = [str(out / m) for m in args.methods]
    subprocess.run([sys.executable, "-m", "paretohqd.cli", "compare", *runs, "--output", str(out / "compare")],
                   check=True, env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
