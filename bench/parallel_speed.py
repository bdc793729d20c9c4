"""Wall time of the demo's units with the local executor against 2 Ray workers (1 CPU and 1 torch thread each).

    python bench/parallel_speed.py [--what training scoring] [--samples 4000]

training: the demo recipe's score and select stages are run once; then `paretohqd train` (every stage-1 model,
stage-2 generation, scoring and selection, every stage-2 model) runs in a fresh process on a copy of that run
directory with the local executor (torch's default threads, then 1 thread) and with 2 Ray workers, and the trained
adapters and stage-2 generations are compared byte for byte with the local 1-thread run's.

scoring: `paretohqd score` on HH-RLHF samples from ../shared/data (the embedded demo set when absent) in fresh
processes with an empty score cache each: the local executor, 1 Ray worker and 2 Ray workers (1 torch thread per
worker; shards of --shard-size samples), samples/s and whether the scores are bit-identical to 1 worker's (float
results depend on the number of torch threads, so only runs with equal threads per worker can agree to the bit).

Each variant runs in its own process, so Ray's start-up is charged to Ray. Last line:
``parallel_speedup=<local seconds (torch's threads) / Ray seconds>`` of the training units.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "hh-rlhf"
RECIPE = REPO / "src" / "paretohqd" / "recipes" / "demo.yaml"
TWO_WORKERS = ["--execution.executor", "ray", "--execution.ray_num_cpus", "2",
               "--execution.resources", "{default: {num_cpus: 1, torch_threads: 1}}"]
LOCAL = ["--execution.executor", "local", "--execution.resources.default.torch_threads", "null"]  # torch's threads


def paretohqd(*args: str) -> float:
    """Run one command in a fresh process; return its wall seconds."""
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "paretohqd.cli", *args], cwd=REPO,
                            env={**os.environ, "PARETOHQD_PROGRESS": "0"}, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        sys.exit(f"paretohqd {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return seconds


def digests(run: Path, patterns: tuple[str, ...]) -> dict[str, str]:
    return {path.relative_to(run).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for pattern in patterns for path in sorted(run.glob(pattern))}


def training(work: Path) -> float:
    base = work / "base"
    paretohqd("select", str(RECIPE), "--output_dir", str(base), *LOCAL)
    one_thread = [*LOCAL[:2], "--execution.resources.default.torch_threads", "1"]
    variants = {"local executor (torch's threads)": LOCAL, "local executor (1 thread)": one_thread,
                "2 Ray workers (1 thread each)": TWO_WORKERS}
    seconds, files = {}, {}
    patterns = ("models/*/*/adapter_model.safetensors", "stage2/generations/*.jsonl")
    for number, (name, flags) in enumerate(variants.items()):
        run = work / f"train_{number}"
        shutil.copytree(base, run)
        seconds[name] = paretohqd("train", str(RECIPE), "--output_dir", str(run), *flags)
        files[name] = digests(run, patterns)
    reference = files["local executor (1 thread)"]
    print(f"training units of the demo (11 preferences: stage 1, stage-2 generation, scoring and selection, stage 2; "
          f"{len(reference)} adapters and generation files):")
    for name in variants:
        same = sum(reference[k] == files[name].get(k) for k in reference)
        print(f"  {name:<34} {seconds[name]:5.0f} s; {same} of {len(reference)} files byte-identical to the "
              "local executor's with 1 thread")
    return seconds["local executor (torch's threads)"] / seconds["2 Ray workers (1 thread each)"]


def scoring(work: Path, count: int, shard_size: int) -> None:
    if SHARED.is_dir():
        from paretohqd.data import load_data

        samples = load_data([str(SHARED / "harmless.jsonl"), str(SHARED / "helpful.jsonl")],
                            adapter="hh_rlhf").samples
        where = "HH-RLHF"
    else:
        samples = pd.read_json(REPO / "src" / "paretohqd" / "assets" / "demo" / "samples.jsonl", lines=True)
        where = "the embedded demo set"
    samples = samples.iloc[:count]
    data = work / "samples.jsonl"
    samples.to_json(data, orient="records", lines=True)
    config = yaml.safe_load(RECIPE.read_text())
    config["data"] = {"source": str(data), "id_column": "id"}
    path = work / "score.yaml"
    path.write_text(yaml.safe_dump(config))
    one_worker = [*TWO_WORKERS[:2], "--execution.ray_num_cpus", "1", *TWO_WORKERS[4:]]
    variants = {"local executor (torch's threads)": LOCAL, "1 Ray worker (1 thread)": one_worker,
                "2 Ray workers (1 thread each)": TWO_WORKERS}
    seconds, tables = {}, {}
    for name, flags in variants.items():
        run = work / f"score_{len(seconds)}"
        seconds[name] = paretohqd("score", str(path), "--output_dir", str(run), "--score.shard_size",
                                  str(shard_size), *flags)
        tables[name] = pd.read_parquet(run / "scores" / "scores.parquet")
    columns = [o["name"] for o in config["objectives"]]
    reference = tables["1 Ray worker (1 thread)"]
    print(f"scoring {len(samples)} samples of {where} x {len(columns)} objectives (shards of {shard_size}), "
          "each in a fresh process with an empty cache:")
    for name, table in tables.items():
        same = all((table[c].to_numpy() == reference[c].to_numpy()).all() for c in columns)
        print(f"  {name:<34} {len(samples) / seconds[name]:6.1f} samples/s ({seconds[name]:4.0f} s); scores "
              f"{'bit-identical to' if same else 'differ from'} 1 worker's")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--what", nargs="+", choices=["training", "scoring"], default=["scoring", "training"])
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--shard-size", type=int, default=500)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPU cores; each variant in a fresh process (Ray's start-up counts)")
    with tempfile.TemporaryDirectory(prefix="parallel_speed_") as folder:
        work = Path(folder)
        if "scoring" in args.what:
            scoring(work, args.samples, args.shard_size)
        if "training" in args.what:
            print(f"parallel_speedup={training(work):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
