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
    "--train.per_device_batch_size", "4", "--train.max_length", "192", "--train.learning_rate", "0.0005",
    "--train.logging_steps", "6",
]
# Optimizer steps (batch 4): ParetoHqD 6 x (6 + 3) = 54; RiC 36 offline + 18 online = 54; Soups 2 x 27 = 54;
# SFT 54. Small on purpose: about 25 minutes for all four on 2 CPU cores.
METHODS = {
    "paretohqd": ["--select.k", "24", "--train.stage1_steps", "6", "--train.stage2_steps", "3",
                  "--stage2.num_prompts", "32",
                  "--stage2.sampling", "{temperature: 0.7, top_p: 0.9, top_k: 0, max_new_tokens: 64, batch_size: 16}"],
    "ric": ["--ric.offline_steps", "36", "--ric.online_iterations", "1", "--ric.online_prompts", "32",
            "--ric.online_steps", "18", "--ric.online_learning_rate", "0.0001", "--ric.mix_samples", "200",
            "--ric.sampling", "{temperature: 0.7, top_p: 0.9, top_k: 0, max_new_tokens: 64, batch_size: 16}"],
    "sft": ["--train.stage1_steps", "54"],
    "soups": ["--select.k", "108", "--train.stage1_steps", "27"],
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
