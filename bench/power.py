"""Can a benchmark on a data set tell a trained model from the base model? A power analysis that carries what the
demo measured over to HH-RLHF, before anybody spends two hours on it.

    HH="[../shared/data/hh-rlhf/harmless.jsonl,../shared/data/hh-rlhf/helpful.jsonl]"
    paretohqd select recipes/hh_rlhf/local.yaml --data.source "$HH" --preferences.n_points 2 \
        --output_dir runs/hh_power_select
    paretohqd run recipes/hh_rlhf/local.yaml --data.source "$HH" --method sft --train.sft.max_steps 1 \
        --output_dir runs/hh_power_base
    python bench/power.py --measured runs/demo runs/demo_seed1 --select runs/hh_power_select --base runs/hh_power_base

For each objective, from the measured runs (finished ParetoHqD runs; the one-hot model of that objective):

- headroom: how far the one-hot's stage-1 selection sits above the base model's own replies to the test prompts on
  its objective (what training on the selection could at most bring the model to);
- realised: the one-hot model's paired difference with the base model on the held-out prompts;
- transfer: realised / headroom (the share of the selection's lead that training carried into the model);
- noise: the per-prompt standard deviation of the paired difference, and its ratio to the base model's own
  per-prompt standard deviation.

For the other data set (``--select``: a ``paretohqd select`` run with the two one-hots; ``--base``: any finished
run whose evaluation includes the base model on that data set's test prompts) the expected difference is transfer
x its headroom and the expected noise is the ratio x its base model's standard deviation. The test prompts a
paired test needs for 80% power at two-sided 5% are (2.8 / effect size)^2. The assumption that the transfer and the
noise ratio carry over is stated, not tested: training budgets in epochs of the selection differ between recipes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

Z = 1.959963984540054 + 0.8416212335729143  # two-sided 5%, 80% power


def one_hot_files(run: Path) -> dict[int, dict]:
    """objective index -> that one-hot preference's stage-1 selection record."""
    chosen = {}
    for path in sorted((run / "selection").glob("pref_*.json")):
        entry = json.loads(path.read_text())
        weights = np.asarray(entry["weights"], dtype=np.float64)
        if weights.max() >= 1.0:
            chosen[int(weights.argmax())] = {**entry, "model": path.stem}
    return chosen


def base_rewards(run: Path, names: list[str]) -> pd.DataFrame:
    scored = pd.read_parquet(run / "eval" / "scores.parquet")
    base = scored[scored["model"] == "base"]
    if base.empty:
        raise SystemExit(f"{run}: its evaluation has no base model rows (evaluate.include_base)")
    return base[names]


def headroom(selected: Path, evaluated: Path, names: list[str]) -> dict[str, float]:
    """Per objective: the one-hot selection's mean minus the base model's mean on the test prompts."""
    scores = pd.read_parquet(selected / "scores" / "scores.parquet").set_index("id")
    base = base_rewards(evaluated, names).mean()
    return {names[j]: float(scores.loc[entry["sample_ids"], names[j]].mean() - base[names[j]])
            for j, entry in one_hot_files(selected).items()}


def base_spread(run: Path, names: list[str]) -> dict[str, float]:
    return {name: float(sd) for name, sd in base_rewards(run, names).std(ddof=1).items()}


def measured(run: Path, names: list[str]) -> dict[str, dict]:
    """Per objective: headroom, realised difference, per-prompt sd of the paired difference, base sd, prompts."""
    scored = pd.read_parquet(run / "eval" / "scores.parquet")
    table = scored.pivot_table(index="prompt_id", columns="model", values=names, aggfunc="first")
    room, spread = headroom(run, run, names), base_spread(run, names)
    out = {}
    for j, entry in one_hot_files(run).items():
        name = names[j]
        diff = table[(name, entry["model"])] - table[(name, "base")]
        out[name] = {"headroom": room[name], "realised": float(diff.mean()), "pair_sd": float(diff.std(ddof=1)),
                     "base_sd": spread[name], "prompts": int(diff.count())}
    return out


def prompts_needed(effect: float, sd: float) -> float:
    return float("inf") if effect <= 0 else (Z * sd / effect) ** 2


def power(effect: float, sd: float, prompts: int) -> float:
    return float(norm.cdf(abs(effect) / sd * np.sqrt(prompts) - 1.959963984540054))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measured", type=Path, nargs="+", required=True, help="finished ParetoHqD runs")
    parser.add_argument("--select", type=Path, required=True, help="a `paretohqd select` run on the other data")
    parser.add_argument("--base", type=Path, required=True, help="a finished run there with the base evaluated")
    parser.add_argument("--prompts", type=int, default=100, help="test prompts the other benchmark would use")
    args = parser.parse_args(argv)
    names = json.loads((args.measured[0] / "eval" / "metrics.json").read_text())["objectives"]
    runs = [measured(run, names) for run in args.measured]
    there_room, there_sd = headroom(args.select, args.base, names), base_spread(args.base, names)
    rows = ["| objective | where | selection headroom | one-hot - base | transfer | paired sd | base sd | effect size "
            "| prompts for 80% power | power at the test set |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        entries = [r[name] for r in runs if name in r]
        room = float(np.mean([e["headroom"] for e in entries]))
        realised = float(np.mean([e["realised"] for e in entries]))
        pair_sd = float(np.mean([e["pair_sd"] for e in entries]))
        base_sd = float(np.mean([e["base_sd"] for e in entries]))
        prompts = entries[0]["prompts"]
        transfer, ratio = realised / room, pair_sd / base_sd
        rows.append(f"| {name} | measured ({len(entries)} runs) | {room:+.3f} | {realised:+.3f} | {transfer:.2f} | "
                    f"{pair_sd:.3f} | {base_sd:.3f} | {realised / pair_sd:+.2f} | "
                    f"{prompts_needed(realised, pair_sd):.0f} | {power(realised, pair_sd, prompts):.2f} at "
                    f"{prompts} |")
        expected, expected_sd = transfer * there_room[name], ratio * there_sd[name]
        rows.append(f"| {name} | expected on {args.select.name} | {there_room[name]:+.3f} | {expected:+.3f} | "
                    f"(carried) | {expected_sd:.3f} | {there_sd[name]:.3f} | {expected / expected_sd:+.2f} | "
                    f"{prompts_needed(expected, expected_sd):.0f} | {power(expected, expected_sd, args.prompts):.2f} "
                    f"at {args.prompts} |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
