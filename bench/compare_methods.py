"""ParetoHqD against its baselines where models move: every method on the demo's style-diverse data, each at the
learning rate a validation sweep chose for its budget; writes its docs page and the README's results table itself.

    python bench/compare_methods.py --sweep          # once per budget: records the rates in learning_rates.json
    python bench/compare_methods.py --stage1-models  # the comparison, at the recorded rates; writes the pages
    python bench/compare_methods.py --stage1-models --report-only  # the pages again from finished runs, running nothing

The comparison goes between its markers in ``docs/benchmarks/comparison.md``; a summary table (one row per method)
between its own markers in README.md.

Common to every run: the demo recipe (800 SmolLM2 replies to 100 prompts in six styles, the offline harmless and
helpful heads, LoRA r 16 on SmolLM2-135M-Instruct, optimizer batch 4, 256 tokens), 3 preferences (w_harmless in
{0, .5, 1}: the M + 1 representatives; 5 were planned and did not fit 2 cores in 2 hours), the 40
test prompts of the demo answered in up to 128 new tokens at temperature 1.0 and top-p 0.9 (the papers'
protocol), and the hypervolume above the reference point the runs declare before training (the 0.1 quantile of the
offline scores).

1. **Learning-rate sweep** (``--sweep``; recorded in ``bench/learning_rates.json``, which the comparison reads: the
   comparison reruns, with other seeds too, without tuning again). Every method, at its budget below, trains at
   each rate of ``LEARNING_RATES`` on 80 of the 100 training prompts (``data.heldout_fraction`` 0.2) and is scored
   on the 16 held-out ones (never on the test prompts) on the comparison's grid; the rate with the highest
   validation hypervolume among those at which at most ``MAX_COLLAPSE`` of the replies collapse (else the least
   collapsing) is used below.
2. **The comparison.** ParetoHqD, Rewarded Soups, SFT and RiC with ``--seeds``; MORLHF and MODPO with the first
   seed at the CPU-seconds ParetoHqD spends per preference, their step counts derived from their sweep runs'
   seconds per step. The base model is evaluated in every ParetoHqD run (its one-hots are compared with it seed by
   seed) and in each other method's first seed. With ``--stage1-models`` ParetoHqD evaluates its stage-1 models
   too, so that the stage-2 ablation is paired per preference and seed.

Budgets, per preference: ParetoHqD 12 stage-1 + 6 stage-2 steps of 4 (the demo's; 3 generators answer 24 prompts
each); each Soups ingredient and SFT 18 steps (one ParetoHqD preference's sequences); RiC ParetoHqD's total
sequences over a 5-preference grid (360, 352 in whole steps of 8: more than ParetoHqD's 216 over the 3 compared,
which favours RiC; the sweep was sized for 5 preferences before they proved too slow) trained at RiC's launch's
global batch 8, split 20 : 4 : 4 over offline and two online rounds like its
paper, each round answering 48 prompts with 24 original samples mixed in (RiC's 20,000 and 10,000 against
ParetoHqD's 30,000 generated replies), its online rate in RiC's proportion to its offline one (1e-5 to 1.41e-4).
The paper's own budgets (RiC 8.5 times ParetoHqD's sequences trained) do not fit this machine.

Runs are real `paretohqd run`s, resumable (rerun the script to continue), on one shared Ray cluster of ``--cpus``
CPUs (one unit per CPU, one torch thread each) that ``--jobs`` runs feed at once; scores are cached once per data
set and shared.
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
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "demo.yaml"
README = REPO / "README.md"
DOCS_PAGE = REPO / "docs" / "benchmarks" / "comparison.md"
RATES_FILE = REPO / "bench" / "learning_rates.json"
MARKERS = "compare_methods"  # the docs page's section
SUMMARY_MARKERS = "compare_methods_summary"  # the README's table
RAY_PORT = 6391
METHODS = ("ric", "paretohqd", "morlhf", "modpo", "soups", "sft")  # longest chains first
SEEDED = ("paretohqd", "soups", "sft", "ric")
COMPUTE_MATCHED = ("morlhf", "modpo")
LEARNING_RATES = (5e-5, 2e-4, 8e-4)
MAX_COLLAPSE = 0.25  # the sweep's bound on the validation collapse rate
PREFERENCES = 3
RIC_GRID = 5  # RiC's budget: ParetoHqD's sequences over a 5-preference grid (see the docstring)
BATCH, RIC_BATCH = 4, 8
STAGE1, STAGE2, GENERATORS, STAGE2_PROMPTS = 12, 6, 3, 24
PER_PREFERENCE_STEPS = STAGE1 + STAGE2
RIC_SHARES = (20, 4, 4)  # offline, round 1, round 2 (RiC: 20,000 and 2 x 4,000 steps)
RIC_ONLINE_RATE = 1e-5 / 1.41e-4
SWEEP_STEPS = {"morlhf": 8, "modpo": 12}  # a first guess at ParetoHqD's seconds per preference
VALIDATION = ["--data.heldout_fraction", "0.2", "--evaluate.source", "null", "--preferences.n_points", str(PREFERENCES),
              "--evaluate.include_base", "false", "--stage2.evaluate_stage1", "false"]
COMPARISON = ["--preferences.n_points", str(PREFERENCES)]
SMOKE = ["--train.sft.max_steps", "1", "--stage2.sft.max_steps", "1", "--stage2.num_prompts", "2",
         "--evaluate.num_prompts", "3",
         "--evaluate.sampling", "{temperature: 1.0, top_p: 0.9, top_k: 0, max_new_tokens: 6, batch_size: 4}",
         "--stage2.sampling", "{temperature: 0.7, top_p: 0.9, top_k: 0, max_new_tokens: 6, batch_size: 4}",
         "--ric.online.sampling", "{temperature: 0.7, top_p: 0.9, top_k: 0, max_new_tokens: 6, batch_size: 4}",
         "--ric.online.prompts", "4", "--morlhf.rloo.max_completion_length", "6", "--ric.offline.sft.max_steps", "1",
         "--ric.online.sft.max_steps", "1", "--morlhf.rloo.max_steps", "1", "--modpo.dpo.max_steps", "1"]


def ric_steps() -> tuple[int, int]:
    """RiC's (offline, per-round online) steps at batch 8: ParetoHqD's sequences over a ``RIC_GRID`` grid."""
    sequences = RIC_GRID * PER_PREFERENCE_STEPS * BATCH
    total = sequences / RIC_BATCH
    return round(total * RIC_SHARES[0] / sum(RIC_SHARES)), round(total * RIC_SHARES[1] / sum(RIC_SHARES))


def budget(method: str, rate: float, steps: int | None = None) -> list[str]:
    """The `paretohqd run` overrides of ``method`` at learning rate ``rate`` (``steps``: MORLHF's and MODPO's)."""
    lr = f"{rate:g}"
    if method == "paretohqd":
        return ["--method", "paretohqd", "--train.sft.learning_rate", lr]
    if method in ("soups", "sft"):
        return ["--method", method, "--train.sft.max_steps", str(PER_PREFERENCE_STEPS), "--soups.k", "24",
                "--train.sft.learning_rate", lr]
    if method == "ric":
        offline, online = ric_steps()
        return ["--method", "ric", "--ric.offline.sft.max_steps", str(offline),
                "--ric.offline.sft.per_device_train_batch_size", str(RIC_BATCH), "--ric.offline.sft.learning_rate", lr,
                "--ric.online.sft.max_steps", str(online), "--ric.online.sft.per_device_train_batch_size",
                str(RIC_BATCH), "--ric.online.sft.learning_rate", f"{rate * RIC_ONLINE_RATE:.3g}",
                "--ric.online.iterations", "2", "--ric.online.prompts", "48", "--ric.online.mix_samples", "24"]
    if method == "morlhf":
        return ["--method", "morlhf", "--morlhf.prompts", "64", "--morlhf.rloo.per_device_train_batch_size",
                str(BATCH), "--morlhf.rloo.max_completion_length", "128", "--morlhf.rloo.max_steps", str(steps),
                "--morlhf.rloo.learning_rate", lr]
    if method == "modpo":
        return ["--method", "modpo", "--modpo.dpo.max_steps", str(steps), "--modpo.dpo.learning_rate", lr]
    raise ValueError(method)


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


def run_many(commands: dict[Path, list[str]], out: Path, env: dict, jobs: int) -> None:
    """The runs, ``jobs`` at once, after one of them has filled the shared score cache: runs that find every
    shard there never wait on its lock."""
    first, command = next(iter(commands.items()))
    run(f"score for {first.relative_to(out)}", [*command[:3], "score", *command[4:]], env,
        first.parent / f"{first.name}.log")
    with ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(run, str(folder.relative_to(out)), command, env, folder.parent / f"{folder.name}.log")
                   for folder, command in commands.items()]
        for future in futures:
            future.result()


def metrics(folder: Path) -> dict:
    return json.loads((folder / "eval" / "metrics.json").read_text())


def seconds_of(cost: dict, *kinds: str) -> float:
    return sum(cost[kind]["wall_seconds"] for kind in kinds)


def sweep(args, base: list[str], out: Path, env: dict) -> dict:
    """Every method at every rate on the validation split; returns the record of what each rate scored."""
    folders = {(m, r): out / "sweep" / m / f"lr_{r:g}" for m in args.methods for r in args.rates}
    commands = {folder: [*base, *budget(m, r, SWEEP_STEPS.get(m)), *VALIDATION, "--seed", str(args.seeds[0]),
                         "--output_dir", str(folder), *args.smoke] for (m, r), folder in folders.items()}
    if not args.report_only:
        run_many(commands, out, env, args.jobs)
    record: dict = {"rates": list(args.rates), "methods": {},
                    "criterion": f"the highest hypervolume above the declared reference point on the validation "
                                 f"prompts among rates whose collapse rate is at most {MAX_COLLAPSE:.0%}; if none, "
                                 "the rate with the least collapse"}
    for method in args.methods:
        rows = []
        for rate in args.rates:
            folder = folders[(method, rate)]
            m = metrics(folder) if (folder / "eval" / "metrics.json").exists() else None
            if m is None or len(m["preferences"]) != (1 if method == "sft" else PREFERENCES):
                continue  # not finished (a --report-only rebuild while the sweep still runs)
            rows.append({"rate": rate, "hypervolume": m["hypervolume_raw_ref"], "collapse_rate": m["collapse_rate"],
                         "cost": m["cost"], "validation_prompts": m["num_test_prompts"]})
        if not rows:
            continue
        admissible = [row for row in rows if row["collapse_rate"] <= MAX_COLLAPSE]
        best = (max(admissible, key=lambda row: (row["hypervolume"], -row["rate"])) if admissible
                else min(rows, key=lambda row: (row["collapse_rate"], row["rate"])))
        record["methods"][method] = {"chosen": best["rate"], "rows": rows}
    return record


def matched_steps(record: dict) -> dict:
    """MORLHF's and MODPO's steps per preference at ParetoHqD's CPU-seconds per preference in the comparison.

    ParetoHqD's seconds per preference: its chosen sweep run's training seconds per trained model (3: the
    one-hots and the balanced generator) plus its stage-2 generation shared by the comparison's preferences;
    the other methods' seconds per step: training seconds over (preferences x sweep steps), averaged over rates."""
    ours = next(r for r in record["methods"]["paretohqd"]["rows"]
                if r["rate"] == record["methods"]["paretohqd"]["chosen"])["cost"]
    per_preference = seconds_of(ours, "training") / GENERATORS + seconds_of(ours, "generation") / PREFERENCES
    result = {"paretohqd_seconds_per_preference": per_preference}
    for method in COMPUTE_MATCHED:
        if method not in record["methods"] or "paretohqd" not in record["methods"]:
            continue
        per_step = float(np.mean([seconds_of(r["cost"], "training", "generation") / (PREFERENCES * SWEEP_STEPS[method])
                                  for r in record["methods"][method]["rows"]]))
        result[method] = {"seconds_per_step": per_step, "steps": max(1, round(per_preference / per_step))}
    return result


def comparison_runs(args, base: list[str], out: Path, record: dict, steps: dict) -> dict[tuple[str, int], tuple]:
    runs = {}
    for method in args.methods:
        if method not in record["methods"]:
            continue
        rate = record["methods"][method]["chosen"]
        extra = ["--stage2.evaluate_stage1", "true"] if method == "paretohqd" and args.stage1_models else []
        for seed in (args.seeds if method in SEEDED else args.seeds[:1]):
            folder = out / "compare" / method / f"seed_{seed}"
            # The base model's point in one run per method is the table's yardstick; ParetoHqD's one-hots are
            # compared with it seed by seed.
            base_model = method == "paretohqd" or seed == args.seeds[0]
            command = [*base, *budget(method, rate, steps.get(method, {}).get("steps")), *COMPARISON, *extra,
                       "--evaluate.include_base", str(base_model).lower(), "--seed", str(seed), "--output_dir",
                       str(folder), *args.smoke]
            runs[(method, seed)] = (folder, command)
    return runs


def compare(name: str, folders: list[Path], out: Path, env: dict) -> Path:
    target = out / f"compare_{name}"
    subprocess.run([sys.executable, "-m", "paretohqd.cli", "compare", *map(str, folders), "--output", str(target)],
                   check=True, env=env, cwd=REPO)
    return target


def findings(result: dict) -> list[str]:
    """What the comparison shows, read from compare.json: rank, P(ParetoHqD higher) with the interval of the
    seed-averaged difference, what the difference's interval could detect, and cost."""
    field, reference = result["hypervolume_field"], result["reference_method"]
    methods = sorted(result["methods"], key=lambda m: -m[f"{field}_mean"])
    lines = ["ranked by mean hypervolume: " + ", ".join(f"{m['method']} {m[f'{field}_mean']:.3f}" for m in methods)]
    for m in methods:
        if m["method"] == reference or m.get("p_paretohqd_higher") is None:
            continue
        low, high = m["difference_ci"]
        verdict = ("higher" if m["p_paretohqd_higher"] >= 0.975 else "lower" if m["p_paretohqd_higher"] <= 0.025
                   else "not separable")
        # 80% power at two-sided 5%: 2.8 standard errors; the interval's half-width is 1.96 of them.
        detectable = 2.8 * (high - low) / (2 * 1.96)
        ours = next(o for o in methods if o["method"] == reference)[f"{field}_mean"]
        lines.append(f"{reference} minus {m['method']}: {ours - m[f'{field}_mean']:+.3f} "
                     f"[{low:+.3f}, {high:+.3f}], P(higher) = {m['p_paretohqd_higher']:.3f} ({verdict}); "
                     f"a difference of {detectable:.2f} would be detected 80% of the time")
    return lines


def base_line(runs: dict[tuple[str, int], tuple]) -> str:
    """The yardstick: the base model's hypervolume above the same declared point, in every run that evaluated it
    (each run samples the base model's replies with its own seed)."""
    values = {}
    for (_method, seed), (folder, _) in runs.items():
        value = metrics(folder).get("base_hypervolume_raw_ref")
        if value is not None:
            values.setdefault(seed, []).append(value)
    return "the base model's hypervolume above the same point, by seed: " + ", ".join(
        f"seed {seed} {np.mean(v):.3f}" + (f" (sd {np.std(v, ddof=1):.3f} over {len(v)} runs)" if len(v) > 1 else "")
        for seed, v in sorted(values.items()))


def stage2_ablation(folders: list[Path]) -> list[str]:
    """The final front against the stage-1 front of the same ParetoHqD run, seed by seed."""
    rows = ["| seed | stage-1 front | final front | base | preferences where stage 2 is ahead / behind / "
            "undecided (95% paired intervals along the preference) |", "|---|---|---|---|---|"]
    gains = []
    for folder in folders:
        m = metrics(folder)
        earlier = m.get("earlier_stage")
        if not earlier:
            continue
        ahead = sum(p["gain_ci"][0] > 0 for p in earlier["pairs"])
        behind = sum(p["gain_ci"][1] < 0 for p in earlier["pairs"])
        gains.append(m["hypervolume_raw_ref"] - earlier["hypervolume_raw_ref"])
        rows.append(f"| {m.get('seed', folder.name)} | {earlier['hypervolume_raw_ref']:.3f} | "
                    f"{m['hypervolume_raw_ref']:.3f} | {m['base_hypervolume_raw_ref']:.3f} | {ahead} / {behind} / "
                    f"{len(earlier['pairs']) - ahead - behind} |")
    if gains:
        spread = f" ± {np.std(gains, ddof=1):.3f} (sd over seeds)" if len(gains) > 1 else ""
        rows += ["", f"Final minus stage-1 hypervolume: {np.mean(gains):+.3f}{spread}; "
                     f"{sum(g > 0 for g in gains)} of {len(gains)} seeds ahead."]
    return rows


def one_hots_against_base(runs: dict[tuple[str, int], tuple]) -> list[str]:
    """Each run's one-hot models against the base model on the same prompts, on the one objective they favour
    (point 1 of the evidence: does a model trained for an objective beat the base on it, seed after seed?)."""
    rows = ["| method | seed | objective | model - base [95% CI] | P(ahead) |", "|---|---|---|---|---|"]
    for (method, seed), (folder, _) in runs.items():
        m = metrics(folder)
        for entry in m.get("vs_base", []):
            weights = entry["weights"]
            if max(weights) < 1.0:
                continue
            i = int(np.argmax(weights))
            low, high = entry["difference_ci"][i]
            rows.append(f"| {method} | {seed} | {m['objectives'][i]} | {entry['difference'][i]:+.3f} "
                        f"[{low:+.3f}, {high:+.3f}] | {entry['p_ahead']:.3f} |")
    return rows


def sweep_table(record: dict, steps: dict) -> list[str]:
    rates = record["rates"]
    rows = ["| method | " + " | ".join(f"lr {r:g}" for r in rates) + " | chosen |",
            "|---|" + "---|" * (len(rates) + 1)]
    for method, entry in record["methods"].items():
        done = {row["rate"]: row for row in entry["rows"]}
        cells = [f"{done[r]['hypervolume']:.3f} ({100 * done[r]['collapse_rate']:.0f}%)" if r in done
                 else "not finished" for r in rates]
        rows.append(f"| {method} | " + " | ".join(cells) + f" | {entry['chosen']:g} |")
    matched = [f"{m} {steps[m]['steps']} steps ({steps[m]['seconds_per_step']:.1f} s each)"
               for m in COMPUTE_MATCHED if m in steps]
    rows += ["", "Validation hypervolume above the declared reference point (collapse rate), on the comparison's "
                 f"grid. Chosen: {record['criterion']}. The collapse bound was added after the first sweep results: "
                 "the heads score repetitive text highly (length), and the hypervolume alone chose ParetoHqD's 8e-4, "
                 "at which half of the validation replies collapsed. "
                 f"ParetoHqD spends {steps['paretohqd_seconds_per_preference']:.0f} CPU-seconds per preference; "
                 "at that budget the comparison trains " + ", ".join(matched) + " per preference."]
    return rows


def write_between_markers(path: Path, name: str, lines: list[str]) -> None:
    """Replace what lies between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``path`` with ``lines``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = path.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"{path.relative_to(REPO)} has no {begin} ... {end} markers to write between")
    block = "\n".join([begin, "", *lines, "", end])
    path.write_text(re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S))


def summary_table(result: dict, prompts: int) -> list[str]:
    """The README's results table: one row per method, read from compare.json."""
    field = result["hypervolume_field"]
    rows = ["| method | seeds | hypervolume above the declared reference [mean ± sd] | collapse | "
            "P(ParetoHqD higher) | training + generation s |", "|---|---|---|---|---|---|"]
    for m in sorted(result["methods"], key=lambda m: -m[f"{field}_mean"]):
        spread = f" ± {m[f'{field}_sd']:.3f}" if m.get(f"{field}_sd") is not None else ""
        p = m.get("p_paretohqd_higher")
        rows.append(f"| {m['method']} | {len(m['seeds'])} | {m[f'{field}_mean']:.3f}{spread} | "
                    f"{100 * m['collapse_rate_mean']:.1f}% | {'-' if p is None else f'{p:.3f}'} | "
                    f"{m['method_wall_seconds_mean']:.0f} |")
    verdicts: dict[str, list[str]] = {}
    for m in result["methods"]:
        p = m.get("p_paretohqd_higher")
        if p is not None:  # the same two-sided 95% reading as findings()
            verdicts.setdefault("ahead of" if p >= 0.975 else "behind" if p <= 0.025 else "not separable from",
                                []).append(m["method"])
    reading = "; ".join(f"{verdict} {', '.join(names)}" for verdict, names in verdicts.items())
    return [*rows, "", f"The demo's data and offline heads, {PREFERENCES} preferences, {prompts} test prompts, 2 CPU "
                       f"cores. ParetoHqD, by the two-level bootstrap: {reading}. Written by "
                       "`bench/compare_methods.py` from its runs."]


def unit_seconds(folders: list[Path]) -> float:
    """The units' own seconds over every run: what the benchmark cost in CPU-slot time."""
    return sum(metrics(folder)["cost"]["total"]["wall_seconds"] for folder in folders
               if (folder / "eval" / "metrics.json").exists())


def sweep_phase(args, base: list[str], out: Path, env: dict, began: float) -> int:
    """Run (or with --report-only read) the sweep and record the chosen rates and matched steps in RATES_FILE."""
    record = sweep(args, base, out, env)
    steps = matched_steps(record)
    folders = [out / "sweep" / m / f"lr_{r:g}" for m in args.methods for r in args.rates]
    previous = json.loads(RATES_FILE.read_text()) if RATES_FILE.exists() else {}
    wall = None if args.report_only else time.perf_counter() - began
    RATES_FILE.write_text(json.dumps({
        "command": "python bench/compare_methods.py " + " ".join(a for a in sys.argv[1:] if a != "--report-only"),
        "seed": args.seeds[0], "rates": args.rates, "sweep": record, "matched_steps": steps,
        "unit_seconds": unit_seconds(folders),
        "wall_seconds": wall if wall is not None else previous.get("wall_seconds")}, indent=2, default=str) + "\n")
    print("\n".join(sweep_table(record, steps)))
    print(f"recorded in {RATES_FILE.relative_to(REPO)}")
    return 0


def compare_phase(args, base: list[str], out: Path, env: dict, began: float) -> int:
    if not RATES_FILE.exists():
        raise SystemExit(f"{RATES_FILE.relative_to(REPO)} is missing: run the sweep first "
                         "(python bench/compare_methods.py --sweep)")
    chosen = json.loads(RATES_FILE.read_text())
    record, steps = chosen["sweep"], chosen["matched_steps"]
    unknown = [m for m in args.methods if m not in record["methods"]]
    if unknown:
        raise SystemExit(f"{RATES_FILE.relative_to(REPO)} has no learning rate for {', '.join(unknown)}: sweep them "
                         "first")
    runs = comparison_runs(args, base, out, record, steps)
    if not args.report_only:
        run_many(dict(runs.values()), out, env, args.jobs)
    finished = {key: (folder / "eval" / "metrics.json").exists() for key, (folder, _) in runs.items()}
    missing = [f"{m}/seed_{s}" for (m, s), done in finished.items() if not done]
    runs = {key: value for key, value in runs.items() if finished[key]}
    folders = [folder for folder, _ in runs.values()]
    target = compare("methods", folders, out, env)
    result = json.loads((target / "compare.json").read_text())
    wall = time.perf_counter() - began
    bench_json = out / "bench.json"
    if args.since:
        wall = (datetime.now(timezone.utc) - datetime.fromisoformat(args.since)).total_seconds()
    elif args.report_only and bench_json.exists():
        wall = json.loads(bench_json.read_text())["wall_seconds"]
    seconds = unit_seconds(folders)
    bench_json.write_text(json.dumps({"seeds": args.seeds, "wall_seconds": wall, "unit_seconds": seconds,
                                      "learning_rates": str(RATES_FILE.relative_to(REPO)),
                                      "runs": {f"{m}/seed_{s}": str(f) for (m, s), (f, _) in runs.items()}},
                                     indent=2, default=str))
    # The invocation that ran the comparison; a --report-only rewrite says so but reports that run's wall time.
    command = "python bench/compare_methods.py " + " ".join(a for a in sys.argv[1:] if a != "--report-only")
    span = f"since {args.since}" if args.since else "in one invocation"
    sweep_cost = (f"{chosen['wall_seconds'] / 60:.0f} min wall" if chosen.get("wall_seconds")
                  else "its wall time not measured on its own (it shared the cores with other runs)")
    lines = [f"Written by `{command.strip()}`: the comparison took **{wall / 60:.0f} min wall** on this 2-core machine "
             f"{span} ({seconds / 3600:.1f} h of the units' own seconds); seeds {args.seeds} for "
             f"{', '.join(m for m in args.methods if m in SEEDED)}, seed {args.seeds[0]} for the compute-matched "
             f"MORLHF and MODPO. The learning rates come from the sweep recorded in "
             f"`{RATES_FILE.relative_to(REPO)}` (`{chosen['command']}`; "
             f"{chosen['unit_seconds'] / 3600:.1f} h of unit seconds, {sweep_cost}), run once per budget."
             + (" This page was rewritten from the finished runs with `--report-only`." if args.report_only else "")
             + (f" **Not finished, so not in the tables: {', '.join(missing)}.**" if missing else ""), "",
             "**Learning rates, chosen on the validation split**", "", *sweep_table(record, steps), "",
             "**The comparison** (40 test prompts; hypervolume above the declared reference point; intervals are 95% "
             "two-level bootstrap intervals, seeds then prompts)", "",
             (target / "compare.md").read_text().split("\n\n![fronts]")[0].strip(), "",
             "What it shows (computed from compare.json):", "", *[f"- {line}" for line in findings(result)],
             f"- {base_line(runs)}", "",
             "**Each one-hot model against the base model** (paired by test prompt, on the objective it favours; "
             "SFT trains no one-hot model)", "", *one_hots_against_base(runs), "",
             *(["**Stage 2 against stage 1** (ParetoHqD, the same run's stage-1 models on the same prompts)", "",
                *stage2_ablation([runs[("paretohqd", s)][0] for s in args.seeds if ("paretohqd", s) in runs])]
               if args.stage1_models else [])]
    print("\n".join(lines))
    if not args.no_write and not args.smoke:
        write_between_markers(DOCS_PAGE, MARKERS, lines)
        prompts = {metrics(folder)["num_test_prompts"] for folder in folders}
        write_between_markers(README, SUMMARY_MARKERS, summary_table(result, max(prompts)))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--sweep", action="store_true",
                        help=f"run the learning-rate sweep and record its choice in {RATES_FILE.name} (the "
                             "comparison reads it)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="the comparison's seeds (the sweep uses the first)")
    parser.add_argument("--rates", type=float, nargs="+", default=list(LEARNING_RATES))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--cpus", type=int, default=2,
                        help="Ray CPUs (one unit each); 0: no Ray, each run's units one after another")
    parser.add_argument("--jobs", type=int, default=4, help="runs feeding the cluster at once")
    parser.add_argument("--since", help="when the benchmark's first invocation started (ISO time with zone): the "
                                        "wall time reported runs from then, across interruptions")
    parser.add_argument("--address", help="a running Ray cluster to use (and leave running) instead of a new one")
    parser.add_argument("--stage1-models", action="store_true",
                        help="ParetoHqD also evaluates its stage-1 models (the stage-2 ablation)")
    parser.add_argument("--smoke", action="store_const", const=SMOKE, default=[],
                        help="1 step, 6 tokens, 3 prompts: checks the plumbing")
    parser.add_argument("--no-write", "--no-readme", dest="no_write", action="store_true",
                        help=f"print the comparison; write neither {DOCS_PAGE.relative_to(REPO)} nor README's table")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: rebuild the record (--sweep) or the docs page and README table from "
                             "finished runs")
    args = parser.parse_args()
    if "paretohqd" not in args.methods:
        parser.error("--methods must include paretohqd: it is what the others are compared with")
    if args.smoke and args.sweep:
        parser.error("--smoke checks the comparison's plumbing; a smoke sweep would overwrite the recorded rates")
    out = (REPO / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PARETOHQD_PROGRESS": "0", "TOKENIZERS_PARALLELISM": "false",
           # the cluster's workers import this checkout
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    if (Path.home() / ".ray" / "auth_token").exists():
        env.setdefault("RAY_AUTH_MODE", "token")  # what `ray start` turns on when a token exists
    began = time.perf_counter()
    base = [sys.executable, "-m", "paretohqd.cli", "run", str(RECIPE), "--wait", "--score.cache_dir",
            str(out / "score_cache")]
    address = args.address or (None if args.report_only or not args.cpus else ray_cluster(args.cpus, env))
    if not args.cpus:
        base += ["--execution.executor", "local"]
    elif address:
        base += ["--execution.executor", "ray", "--execution.ray_address", address,
                 "--execution.resources", "{default: {num_cpus: 1, torch_threads: 1}}"]
    try:
        if args.sweep:
            return sweep_phase(args, base, out, env, began)
        return compare_phase(args, base, out, env, began)
    finally:
        if address and not args.address:
            subprocess.run([str(Path(sys.executable).with_name("ray")), "stop", "--force"], env=env,
                           capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
