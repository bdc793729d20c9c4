"""The paper's comparison on HH-RLHF (harmless vs helpful): ParetoHqD, RiC (offline + online), SFT, Rewarded
Soups, MORLHF (RLOO) and MODPO under two budgets, the paper's ablations, then `paretohqd compare` with bootstrap
intervals; writes the README's comparison section itself.

    python bench/compare_methods.py [--out runs/bench] [--factor 0.01] [--seeds 0 1 2] [--jobs 3]

Same base model (the embedded SmolLM2-135M-Instruct, bf16), reward models (the offline harmless/helpful heads),
data (../shared/data/hh-rlhf, 10% of prompts held out; the first 100 held-out prompts are the test set), preference
grid (w_harmless in {0, .5, 1}: the M one-hots and the balanced preference, ParetoHqD's stage-2 generators; a finer
grid does not fit 2 cores in 2 hours), optimizer batch (4 sequences) and generation settings for every method.

Budgets, in sequences seen (optimizer steps x batch), each method's paper's shape scaled by one common factor:

- paper: ParetoHqD 200 steps x batch 8 at stage 1 and 100 x 8 at stage 2 per preference, 10,000 stage-2 prompts
  per generator; RiC 20,000 offline steps x batch 1 (its code's batch) and 2 online rounds of 4,000, 20,000 prompts
  per round, 10,000 original samples mixed in; MORLHF, MODPO, each Soups ingredient and SFT get ParetoHqD's
  per-preference budget (their papers' budgets are far larger: MORLHF's 2,273 GPU-hours would not fit). Seeds:
  ``--seeds``.
- equal: every method the same total optimizer steps as ParetoHqD's (RiC split 20 : 4 : 4 like its paper). One seed.
  A run whose settings equal the paper budget's seed-0 run is that run (ParetoHqD, MORLHF, MODPO).

Ablations (paper budget, seed 0): stage 1 only; a weighted-sum selection instead of rays; all data instead of the
first Pareto layers (``select.min_pool`` above the number of samples).

Runs are real `paretohqd run`s, resumable (rerun the script to continue), on one shared Ray cluster of
``--cpus`` CPUs (one unit per CPU, one torch thread each) that ``--jobs`` runs feed at once; the score cache is
filled once and shared, so scoring is reported on its own line. The default factor 0.01 is the largest that fits:
ParetoHqD 4 + 2 steps (of 4 sequences) per preference, RiC 50 offline + 2 x 10 online steps.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "hh_rlhf.yaml"
README = REPO / "README.md"
BEGIN, END = "<!-- compare_methods:begin -->", "<!-- compare_methods:end -->"
BATCH = 4
PREFERENCES = 3
TEST_PROMPTS = 100
RAY_PORT = 6391
PRIORITY = ("ric", "morlhf", "modpo", "paretohqd", "soups", "sft")

# (optimizer steps, batch) as each paper ran them.
PARETOHQD_STAGE1, PARETOHQD_STAGE2, PARETOHQD_BATCH = 200, 100, 8
RIC_OFFLINE, RIC_ONLINE, RIC_ROUNDS, RIC_BATCH = 20000, 4000, 2, 1
STAGE2_PROMPTS, RIC_PROMPTS, RIC_MIX = 10000, 20000, 10000


def sampling(tokens: int, batch: int) -> str:
    return f"{{temperature: 0.7, top_p: 0.9, top_k: 0, max_new_tokens: {tokens}, batch_size: {batch}}}"


def common(tokens: int) -> list[str]:
    return ["--preferences.n_points", str(PREFERENCES), "--evaluate.num_prompts", str(TEST_PROMPTS),
            "--evaluate.sampling", f"{{temperature: 1.0, top_p: 0.9, top_k: 0, max_new_tokens: {tokens}, "
                                   "batch_size: 25}",
            "--train.sft.per_device_train_batch_size", str(BATCH), "--train.sft.max_length", "192",
            "--model.max_prompt_length", "128", "--model.dtype", "bfloat16", "--train.sft.logging_steps", "4"]


def steps(paper_steps: int, paper_batch: int, factor: float) -> int:
    """Optimizer steps at our batch that see ``factor`` times the sequences the paper's run saw."""
    return max(1, round(paper_steps * paper_batch * factor / BATCH))


def budgets(factor: float, tokens: int) -> dict[str, dict[str, list[str]]]:
    """budget -> method -> the `paretohqd run` overrides."""
    s1, s2 = steps(PARETOHQD_STAGE1, PARETOHQD_BATCH, factor), steps(PARETOHQD_STAGE2, PARETOHQD_BATCH, factor)
    per_preference = s1 + s2
    generated = sampling(tokens, 16)
    ric_offline, ric_online = steps(RIC_OFFLINE, RIC_BATCH, factor), steps(RIC_ONLINE, RIC_BATCH, factor)
    prompts = max(8, round(STAGE2_PROMPTS * factor))

    def paretohqd(stage1: int, stage2: int) -> list[str]:
        return ["--method", "paretohqd", "--train.sft.max_steps", str(stage1), "--stage2.sft.max_steps", str(stage2),
                "--stage2.num_prompts", str(prompts), "--stage2.sampling", generated]

    def ric(offline: int, online: int) -> list[str]:
        return ["--method", "ric", "--ric.offline.sft.max_steps", str(offline),
                "--ric.online.sft.max_steps", str(online), "--ric.online.iterations", str(RIC_ROUNDS),
                "--ric.online.prompts", str(max(8, round(RIC_PROMPTS * factor))),
                "--ric.online.mix_samples", str(max(8, round(RIC_MIX * factor))), "--ric.online.sampling", generated]

    def one_model(method: str, max_steps: int) -> list[str]:
        return ["--method", method, "--train.sft.max_steps", str(max_steps)]

    def per_preference_method(method: str, max_steps: int) -> list[str]:
        section = {"morlhf": "morlhf.rloo", "modpo": "modpo.dpo"}[method]
        # one RLOO step: BATCH completions (BATCH / 4 prompts x 4 generations) of the same length as the others'
        extra = ["--morlhf.prompts", str(prompts), "--morlhf.rloo.per_device_train_batch_size", str(BATCH),
                 "--morlhf.rloo.max_completion_length", str(tokens)] if method == "morlhf" else []
        return ["--method", method, f"--{section}.max_steps", str(max_steps), *extra]

    total = PREFERENCES * per_preference
    share = RIC_OFFLINE + RIC_ROUNDS * RIC_ONLINE
    paper = {
        "paretohqd": paretohqd(s1, s2),
        "ric": ric(ric_offline, ric_online),
        "sft": one_model("sft", per_preference),
        "soups": one_model("soups", per_preference) + ["--soups.k", "100"],
        "morlhf": per_preference_method("morlhf", per_preference),
        "modpo": per_preference_method("modpo", per_preference),
    }
    equal = {
        "paretohqd": paper["paretohqd"],
        "ric": ric(round(total * RIC_OFFLINE / share), round(total * RIC_ONLINE / share)),
        "sft": one_model("sft", total),
        "soups": one_model("soups", total // 2) + ["--soups.k", "100"],
        "morlhf": per_preference_method("morlhf", per_preference),
        "modpo": per_preference_method("modpo", per_preference),
    }
    ablations = {
        "stage1_only": paper["paretohqd"] + ["--stage2.enabled", "false"],
        "weighted_sum": paper["paretohqd"] + ["--select.metric", "weighted_sum"],
        "all_data": paper["paretohqd"] + ["--select.min_pool", "100000000"],
    }
    return {"paper": paper, "equal": equal, "ablations": ablations}


def ray_cluster(cpus: int, env: dict) -> str:
    ray = Path(sys.executable).with_name("ray")
    subprocess.run([str(ray), "stop", "--force"], env=env, capture_output=True)
    subprocess.run([str(ray), "start", "--head", f"--port={RAY_PORT}", f"--num-cpus={cpus}", "--num-gpus=0",
                    "--include-dashboard=false", "--disable-usage-stats"], env=env, check=True, capture_output=True)
    return f"127.0.0.1:{RAY_PORT}"


def run(label: str, command: list[str], env: dict, log: Path) -> float:
    started = time.perf_counter()
    print(f"== {label} started", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        result = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{label} failed (exit {result.returncode}); see {log}")
    print(f"== {label} finished in {seconds:.0f} s", flush=True)
    return seconds


def compare(name: str, runs: list[Path], out: Path, env: dict, labels: list[str] | None = None) -> Path:
    target = out / f"compare_{name}"
    subprocess.run([sys.executable, "-m", "paretohqd.cli", "compare", *map(str, runs), "--output", str(target),
                    *(["--labels", *labels] if labels else [])], check=True, env=env, cwd=REPO)
    return target


def findings(folder: Path) -> list[str]:
    """What a comparison shows, read from its compare.json: where ParetoHqD ranks, who it beats and who it does
    not (P(ParetoHqD > method) from the paired bootstrap), at what cost."""
    result = json.loads((folder / "compare.json").read_text())
    field, reference = result["hypervolume_field"], result["reference_method"]
    methods = sorted(result["methods"], key=lambda m: -m[f"{field}_mean"])
    lines = ["ranked by mean hypervolume: " + ", ".join(f"{m['method']} {m[f'{field}_mean']:.3f}" for m in methods)]
    if reference is None:
        return lines
    others = [m for m in methods if m["method"] != reference and m.get("p_paretohqd_higher") is not None]
    for verdict, chosen in (("higher with bootstrap probability P >= 0.95 than",
                             [m for m in others if m["p_paretohqd_higher"] >= 0.95]),
                            ("not clearly higher (0.5 <= P < 0.95) than",
                             [m for m in others if 0.5 <= m["p_paretohqd_higher"] < 0.95]),
                            ("more likely lower (P < 0.5) than", [m for m in others if m["p_paretohqd_higher"] < 0.5])):
        if chosen:
            lines.append(f"{reference}'s hypervolume is {verdict}: " + ", ".join(
                f"{m['method']} (P = {m['p_paretohqd_higher']:.2f})" for m in chosen))
    ours = next(m for m in methods if m["method"] == reference)
    lines.append(f"training + generation seconds against {reference}'s "
                 f"{ours['method_wall_seconds_mean']:.0f} s: " + ", ".join(
                     f"{m['method']} {m['time_vs_paretohqd']:.2f}x" for m in methods
                     if m["method"] != reference and m.get("time_vs_paretohqd") is not None))
    return lines


def unit_seconds(folders: list[Path]) -> float:
    """The units' own seconds over every distinct run (scoring once): what the whole benchmark cost in CPU-slot
    time, whatever ran at once and however often it was interrupted."""
    total, scoring = 0.0, 0.0
    for folder in dict.fromkeys(folders):
        cost = json.loads((folder / "eval" / "metrics.json").read_text())["cost"]
        total += cost["total"]["wall_seconds"] - cost["scoring"]["wall_seconds"]
        scoring = max(scoring, cost["scoring"]["wall_seconds"])
    return total + scoring


def write_readme(sections: list[tuple[str, Path]], factor: float, tokens: int, eval_tokens: int, seeds: list[int],
                 wall: float, seconds: float, command: str) -> None:
    body = [BEGIN, "",
            f"Written by `{command}`: {wall / 60:.0f} min wall on this 2-core machine for its last invocation "
            f"({seconds / 3600:.1f} h of the units' own seconds over all runs); common budget "
            f"factor {factor:g}, {TEST_PROMPTS} held-out test prompts answered in up to {eval_tokens} new tokens, "
            f"generated training data in up to {tokens}, seeds {seeds} for the paper budget. Hypervolumes share one "
            "normalisation and reference point per table (below each); intervals are 95% bootstrap intervals over "
            "test prompts; train / gen s are each method's own units' seconds.", ""]
    for title, folder in sections:
        body += [f"**{title}**", "", (folder / "compare.md").read_text().split("\n\n![fronts]")[0].strip(), "",
                 "What it shows (computed from compare.json):", ""]
        body += [f"- {line}" for line in findings(folder)] + [""]
    body.append(END)
    text = README.read_text()
    block = "\n".join(body)
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    README.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--factor", type=float, default=0.01, help="the common budget factor")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per generated training response")
    parser.add_argument("--eval-tokens", type=int, default=24, help="new tokens per held-out response")
    parser.add_argument("--cpus", type=int, default=2, help="Ray CPUs (one unit each)")
    parser.add_argument("--jobs", type=int, default=3, help="runs feeding the cluster at once")
    parser.add_argument("--budgets", nargs="+", default=["paper", "equal", "ablations"])
    parser.add_argument("--methods", nargs="+", default=list(PRIORITY), choices=PRIORITY)
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: rebuild the comparisons and the README section from finished runs")
    args = parser.parse_args()
    out = (REPO / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PARETOHQD_PROGRESS": "0", "TOKENIZERS_PARALLELISM": "false",
           # the cluster's workers import this checkout
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    if (Path.home() / ".ray" / "auth_token").exists():
        env.setdefault("RAY_AUTH_MODE", "token")  # what `ray start` turns on when a token exists
    began = time.perf_counter()
    plans = budgets(args.factor, args.tokens)
    base = [sys.executable, "-m", "paretohqd.cli", "run", str(RECIPE), "--score.cache_dir", str(out / "score_cache"),
            *common(args.eval_tokens)]
    runs: dict[tuple[str, str, int], Path] = {}
    commands: dict[Path, list[str]] = {}
    methods: dict[Path, str] = {}
    for budget in args.budgets:
        seeds = args.seeds if budget == "paper" else [args.seeds[0]]
        for method, overrides in plans[budget].items():
            if budget != "ablations" and method not in args.methods or budget == "ablations" and \
                    "paretohqd" not in args.methods:
                continue
            for seed in seeds:
                same = budget != "paper" and plans["paper"].get(method) == overrides and "paper" in args.budgets
                folder = out / ("paper" if same else budget) / method / f"seed_{seed}"
                runs[(budget, method, seed)] = folder
                if same:
                    continue  # that paper-budget run is this one
                # the base model's point is not part of any comparison: its generations would only cost
                commands[folder] = [*base, *overrides, "--seed", str(seed), "--output_dir", str(folder),
                                    "--evaluate.include_base", "false"]
                methods[folder] = overrides[overrides.index("--method") + 1]
    if not args.report_only:
        run_all(commands, methods, args, out, env)
    sections = []
    if "paper" in args.budgets:
        folders = [runs[("paper", m, s)] for m in plans["paper"] if m in args.methods for s in args.seeds]
        sections.append((f"Paper-shaped budgets, {len(args.seeds)} seeds", compare("paper", folders, out, env)))
    if "equal" in args.budgets:
        folders = [runs[("equal", m, args.seeds[0])] for m in plans["equal"] if m in args.methods]
        sections.append(("Equal optimizer steps, 1 seed", compare("equal", folders, out, env)))
    if "ablations" in args.budgets and "paper" in args.budgets and "paretohqd" in args.methods:
        folders = [runs[("paper", "paretohqd", args.seeds[0])]] + [runs[("ablations", a, args.seeds[0])]
                                                                    for a in plans["ablations"]]
        sections.append(("Ablations of ParetoHqD (paper budget, seed 0)",
                         compare("ablations", folders, out, env, ["both stages", "stage 1 only",
                                                                  "weighted-sum selection", "all data"])))
    record = out / "bench.json"
    wall = time.perf_counter() - began
    if args.report_only and record.exists():
        wall = json.loads(record.read_text())["wall_seconds"]
    seconds = unit_seconds(list(runs.values()))
    summary = {"factor": args.factor, "seeds": args.seeds, "tokens": args.tokens, "eval_tokens": args.eval_tokens,
               "wall_seconds": wall, "unit_seconds": seconds,
               "runs": {f"{b}/{m}/seed_{s}": str(f) for (b, m, s), f in runs.items()}}
    record.write_text(json.dumps(summary, indent=2))
    print(f"compare_methods: {len(commands)} runs in {wall / 60:.1f} min ({seconds / 3600:.2f} h of unit seconds); "
          "tables in " + ", ".join(str(folder / "compare.md") for _, folder in sections))
    if not args.no_readme and sections:
        command = "python bench/compare_methods.py " + " ".join(a for a in sys.argv[1:] if a != "--report-only")
        write_readme(sections, args.factor, args.tokens, args.eval_tokens, args.seeds, wall, seconds,
                     command.strip())
    return 0


def run_all(commands: dict[Path, list[str]], methods: dict[Path, str], args, out: Path, env: dict) -> None:
    """Every run on one Ray cluster of ``args.cpus`` CPUs, ``args.jobs`` runs feeding it at once."""
    address = ray_cluster(args.cpus, env)
    ray_args = ["--execution.executor", "ray", "--execution.ray_address", address,
                "--execution.resources", "{default: {num_cpus: 1, torch_threads: 1}}"]
    try:
        first = next(iter(commands))
        # Scoring once fills the shared cache: the runs then find every shard there.
        score = [sys.executable, "-m", "paretohqd.cli", "score", *commands[first][4:], *ray_args]
        run("score", score, env, out / "score.log")
        # Longest first: RiC's chain of offline and online stages, then the per-preference methods.
        order = sorted(commands, key=lambda folder: PRIORITY.index(methods[folder]))
        with ThreadPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(run, str(folder.relative_to(out)), [*commands[folder], *ray_args], env,
                                   folder.with_suffix(".log")) for folder in order]
            for future in futures:
                future.result()
    finally:
        subprocess.run([str(Path(sys.executable).with_name("ray")), "stop", "--force"], env=env, capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
