"""Does each one-hot model beat the base model on its own objective, seed after seed, on enough prompts to tell?

The demo's 40 test prompts give the helpful one-hot 35% power (bench/power.py: effect size 0.25, 125 prompts for
80%). This takes finished ParetoHqD runs (one per seed), keeps their trained models, and evaluates only the two
one-hots and the base model on held-out HH-RLHF prompts (drawn across the helpful and the harmless file by the
evaluation's own seed, so every run answers the same prompts), then reports each one-hot's paired difference with
the base, per seed (prompt bootstrap) and over the seeds (two-level bootstrap: seeds, then prompts).

    python bench/one_hots_more_prompts.py runs/bench/compare/paretohqd/seed_0 ... [--prompts 200] [--out ...]

Nothing is trained: the copies of the runs (hard links) reuse every training unit by key. Every model of a run's
grid answers (a grid of the one-hots only would reorder stage 2's generated data and retrain it); keep the runs'
grids small (the benchmark's runs have 3 preferences). The HH prompts are not the
demo's distribution (real multi-turn dialogues, half red-teaming): this asks whether what training bought carries
to prompts nobody wrote for the demo. Writes its section between its markers in ``docs/benchmarks/demo.md``;
``--report-only`` writes it again from the finished copies in ``--out``, running nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from paretohqd.evaluate.bootstrap import (
    bootstrap_counts,
    bootstrap_indices,
    interval,
    probability_higher,
    replicate_means,
)
from paretohqd.evaluate.compare import seed_averaged

REPO = Path(__file__).resolve().parents[1]
HH = (REPO / ".." / "shared" / "data" / "hh-rlhf").resolve()
DOCS_PAGE = REPO / "docs" / "benchmarks" / "demo.md"
BEGIN, END = "<!-- one_hots_more_prompts:begin -->", "<!-- one_hots_more_prompts:end -->"
Z80 = 1.959963984540054 + 0.8416212335729143  # two-sided 5%, 80% power
BOOTSTRAP, SEED = 4000, 0


def evaluate_one_hots(run: Path, copy: Path, prompts: int, env: dict) -> None:
    if not copy.exists():
        shutil.copytree(run, copy, copy_function=os.link)  # units write by rename: the originals stay as they are
    command = [sys.executable, "-m", "paretohqd.cli", "run", str(copy / "config.resolved.yaml"),
               "--output_dir", str(copy), "--evaluate.source", f"[{HH / 'helpful.jsonl'}, {HH / 'harmless.jsonl'}]",
               "--evaluate.adapter", "hh_rlhf", "--evaluate.num_prompts", str(prompts), "--evaluate.every_nth", "1",
               "--stage2.evaluate_stage1", "false", "--evaluate.include_base", "true",
               "--execution.executor", "local", "--execution.resources", "{default: {torch_threads: 1}}"]
    with (copy.parent / f"{copy.name}.log").open("a") as log:
        result = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    if result.returncode != 0:
        raise SystemExit(f"{copy} failed (exit {result.returncode}); see {copy.parent / f'{copy.name}.log'}")


def paired(copy: Path) -> tuple[dict[str, pd.Series], list[str]]:
    """objective -> per-prompt (one-hot of that objective minus base) on it; the objectives in order."""
    metrics = json.loads((copy / "eval" / "metrics.json").read_text())
    scores = pd.read_parquet(copy / "eval" / "scores.parquet")
    objectives = metrics["objectives"]
    out = {}
    for entry in metrics["vs_base"]:
        if max(entry["weights"]) < 1.0:
            continue  # evaluated (the grid is the run's own: another grid would reorder stage 2's data), not reported
        name = objectives[int(np.argmax(entry["weights"]))]
        table = scores.pivot_table(index="prompt_id", columns="model", values=name, aggfunc="first")
        out[name] = (table[entry["model"]] - table["base"]).sort_index()
    return out, objectives


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished ParetoHqD runs, one per seed")
    parser.add_argument("--prompts", type=int, default=200, help="HH-RLHF test prompts (both files, seeded draw)")
    parser.add_argument("--out", type=Path, default=Path("runs/one_hots_hh"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-write", "--no-readme", dest="no_write", action="store_true",
                        help=f"print the section; do not write it into {DOCS_PAGE.relative_to(REPO)}")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: the section again from the evaluated copies already in --out")
    args = parser.parse_args()
    out = (REPO / args.out).resolve()
    copies = [out / f"{run.parent.name}_{run.name}" for run in args.runs]
    if args.report_only:
        unfinished = [str(copy) for copy in copies if not (copy / "eval" / "metrics.json").exists()]
        if unfinished:
            raise SystemExit(f"not evaluated yet, so nothing to report: {', '.join(unfinished)}")
    else:
        if not HH.is_dir():
            raise SystemExit(f"{HH} is missing: this benchmark reads HH-RLHF's test prompts from there")
        out.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PARETOHQD_PROGRESS": "0",
               "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
        with ThreadPoolExecutor(args.jobs) as pool:
            for future in [pool.submit(evaluate_one_hots, run, copy, args.prompts, env)
                           for run, copy in zip(args.runs, copies)]:
                future.result()

    per_run = [paired(copy) for copy in copies]
    objectives = per_run[0][1]
    prompts = per_run[0][0][objectives[0]].index
    draws = bootstrap_indices(len(prompts), BOOTSTRAP, SEED)
    counts = bootstrap_counts(draws, len(prompts))
    rows = ["| objective | seed | prompts | one-hot - base [95% CI] | P(one-hot ahead) | sd per prompt |",
            "|---|---|---|---|---|---|"]
    summary = []
    for objective in objectives:
        diffs = np.array([differences[objective].reindex(prompts).to_numpy() for differences, _ in per_run])
        replicates = replicate_means(counts, diffs.T).T  # (seeds, B): the same prompt draws for every seed
        for run, diff, rep in zip(args.runs, diffs, replicates):
            low, high = interval(rep)
            rows.append(f"| {objective} | {run.name} | {len(diff)} | {diff.mean():+.3f} [{low:+.3f}, {high:+.3f}] | "
                        f"{probability_higher(rep, 0.0):.3f} | {diff.std(ddof=1):.3f} |")
        pooled = seed_averaged(replicates, SEED, 1)
        low, high = interval(pooled)
        sd = float(np.mean(diffs.std(axis=1, ddof=1)))
        effect = abs(diffs.mean()) / sd
        rows.append(f"| {objective} | **all {len(diffs)}** (seeds, then prompts) | {diffs.shape[1]} | "
                    f"**{diffs.mean():+.3f} [{low:+.3f}, {high:+.3f}]** | {probability_higher(pooled, 0.0):.3f} | "
                    f"{sd:.3f} |")
        excludes = "excludes" if low > 0 or high < 0 else "includes"
        summary.append(f"{objective}: effect size {effect:.2f} per prompt, so one seed needs "
                       f"{int(np.ceil((Z80 / effect) ** 2)) if effect > 0 else 'no finite number of'} prompts for "
                       f"80% power; the interval over seeds {excludes} 0")
    lines = [f"Written by `python bench/one_hots_more_prompts.py {' '.join(str(r) for r in args.runs)} --prompts "
             f"{args.prompts}`: the one-hot models of {len(args.runs)} ParetoHqD runs (one per seed) and the base "
             f"model answer {len(prompts)} held-out HH-RLHF prompts (helpful and harmless files, a seeded draw; "
             "128 new tokens at temperature 1.0, top-p 0.9), each paired with the base on the objective it favours.",
             "", *rows, "", *[f"- {line}" for line in summary]]
    print("\n".join(lines))
    if not args.no_write:
        block = "\n".join([BEGIN, "", *lines, "", END])
        text = DOCS_PAGE.read_text()
        if BEGIN not in text:
            raise SystemExit(f"{DOCS_PAGE.relative_to(REPO)} has no {BEGIN} marker to write between")
        DOCS_PAGE.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S))
    return 0


if __name__ == "__main__":
    sys.exit(main())
