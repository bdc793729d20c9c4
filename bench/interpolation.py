"""Benchmark: does serving a preference by interpolation hold? ("any preference in, a model out").

ParetoHqD trains one model per preference of a coarse grid (default 6 preferences: w_harmless in {0, 0.2, ..., 1}),
then serves the midpoints between neighbours (0.1, 0.3, ...) as the exact weighted combination of the two
neighbouring trained LoRA adapters (``evaluate.served: midpoints``, ``served_mode: interpolate``), and evaluates them
with the run's own evaluation: the same held-out prompts, sampling, seed and reward models. Reported per midpoint:
its mean rewards against its two neighbours', whether it lies between them on every objective, whether a trained
point dominates it, and what it adds to the trained front's hypervolume; then the hypervolume of trained +
interpolated points against trained alone (``eval/metrics.json``: ``hypervolume_minmax_run_worst`` and
``..._with_served``, both on the run's frame: min-max over its trained and base points).

With ``--trained-midpoints`` a second run trains the fine grid (11 preferences: the coarse grid and its midpoints,
the paper's grid) on the same data and settings, so each interpolated midpoint meets the model actually trained for
that preference: both runs' points on one frame (min-max over the union of both runs' points and the base), the
hypervolume of coarse trained, coarse trained + interpolated, and fine trained; and what each cost (the fine grid's
extra training seconds against the seconds to build the interpolated models).

    python bench/interpolation.py                              # the embedded demo, 6 preferences (~8 min, 2 cores)
    python bench/interpolation.py --trained-midpoints          # and the 11-preference run to compare (~20 min)
    python bench/interpolation.py --out /tmp/interp --json /tmp/interp.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import paretohqd  # noqa: E402
from paretohqd import io  # noqa: E402
from paretohqd.cli import recipe_path  # noqa: E402
from paretohqd.evaluate.metrics import HV_RUN_WORST, HV_RUN_WORST_SERVED  # noqa: E402
from paretohqd.pareto.indicators import minmax_frame  # noqa: E402
from paretohqd.tables import format_table, format_vector  # noqa: E402


def run(out: Path, name: str, n_points: int, served: bool, extra: list[str]) -> tuple[dict, float]:
    overrides = ["--output_dir", str(out / name), "--preferences.n_points", str(n_points), *extra]
    if served:
        overrides += ["--evaluate.served", "midpoints", "--evaluate.served_mode", "interpolate"]
    config = paretohqd.load_config(str(recipe_path("demo")), overrides)
    started = time.perf_counter()
    metrics = paretohqd.run(config, log=lambda message: print(f"  [{name}] {message}", flush=True))
    return metrics, time.perf_counter() - started


def unit_seconds(run_dir: Path, prefix: str) -> float:
    units = io.read_json(run_dir / "manifest.json")["units"]
    return sum(entry.get("wall_seconds", 0.0) for name, entry in units.items() if name.startswith(prefix))


def count_units(run_dir: Path, prefix: str) -> int:
    return sum(name.startswith(prefix) for name in io.read_json(run_dir / "manifest.json")["units"])


def served_table(metrics: dict) -> tuple[str, list[dict]]:
    names = metrics["objectives"]
    trained = {p["model"]: p for p in metrics["preferences"]}
    rows, records = [], []
    for entry in metrics["served"]:
        neighbours = [trained[m["model"]] for m in entry["from"]]
        rows.append([entry["model"], format_vector(entry["weights"], ".2f"),
                     " + ".join(f"{m['weight']:.2f} {m['model']}" for m in entry["from"]),
                     *[f"{v:.3f}" for v in entry["mean_rewards"]],
                     " / ".join(format_vector(n["mean_rewards"], ".3f") for n in neighbours),
                     "yes" if entry["between_neighbours"] else "no", "yes" if entry["dominated_by_trained"] else "no",
                     f"{entry['hypervolume_gain']:+.4f}", f"{entry['collapse_rate']:.0%}"])
        records.append({key: entry[key] for key in ("model", "weights", "mean_rewards", "between_neighbours",
                                                    "dominated_by_trained", "hypervolume_gain", "collapse_rate")}
                       | {"neighbours": {n["model"]: n["mean_rewards"] for n in neighbours}})
    header = ["served", "weights", "mix", *[f"mean {n}" for n in names], "neighbours' means", "between",
              "dominated", "HV gain", "collapse"]
    return format_table(header, rows), records


def per_prompt(run_dir: Path, metrics: dict, models: list[dict]) -> tuple[tuple[str, ...], np.ndarray]:
    """(test prompt ids in their number's order, ``(prompts, models, M)`` rewards of ``models``, metrics entries, in
    their order) from a run's eval/scores.parquet, read and checked as ``paretohqd compare`` reads it."""
    import pandas as pd

    from paretohqd.evaluate.compare import run_scores

    frame = pd.read_parquet(run_dir / "eval" / "scores.parquet")
    names = [entry["model"] for entry in models]
    scores = run_scores(run_dir.name, {"run_dir": run_dir, "method": metrics["method"], "preferences": models},
                        frame[frame["model"].isin(names)], metrics["objectives"])
    order = np.argsort([int(prompt[1:]) for prompt in scores.prompts], kind="stable")  # p0, p1, ..., p10
    return tuple(np.asarray(scores.prompts)[order]), scores.rewards[order]


def bootstrap_fronts(out: Path, coarse: dict, fine: dict, frame, replicates: int, seed: int) -> dict:
    """Hypervolume intervals over resampled test prompts (the same draws for every front: paired), on ``frame``."""
    from paretohqd.evaluate.bootstrap import bootstrap_counts, bootstrap_indices, probability_higher, replicate_means

    trained = coarse["preferences"]
    prompts, coarse_rewards = per_prompt(out / "coarse", coarse, [*trained, *coarse["served"]])
    fine_prompts, fine_rewards = per_prompt(out / "fine", fine, fine["preferences"])
    if prompts != fine_prompts:
        raise SystemExit("the two runs were evaluated on different test prompts")
    counts = bootstrap_counts(bootstrap_indices(len(prompts), replicates, seed), len(prompts))
    coarse_means, fine_means = replicate_means(counts, coarse_rewards), replicate_means(counts, fine_rewards)
    volumes = {"coarse_trained": frame.hypervolumes(coarse_means[:, : len(trained)]),
               "coarse_trained_plus_interpolated": frame.hypervolumes(coarse_means),
               "fine_trained": frame.hypervolumes(fine_means)}
    plus = volumes["coarse_trained_plus_interpolated"]
    return {"replicates": replicates, "seed": seed, "num_test_prompts": len(prompts),
            "interval_95": {key: np.percentile(v, [2.5, 97.5]).tolist() for key, v in volumes.items()},
            "p_interpolated_beats_fine": probability_higher(plus, volumes["fine_trained"]),
            "p_interpolated_beats_coarse": probability_higher(plus, volumes["coarse_trained"])}


def against_trained(coarse: dict, fine: dict) -> tuple[str, dict]:
    """The interpolated midpoints against the fine grid's trained models for the same preferences, on one frame."""
    def points(entries):
        return np.array([e["mean_rewards"] for e in entries], dtype=np.float64)

    def weights(entries):
        return [tuple(np.round(e["weights"], 6)) for e in entries]

    fine_by_weights = dict(zip(weights(fine["preferences"]), fine["preferences"]))
    served = coarse["served"]
    union = np.vstack([points(coarse["preferences"]), points(served), points(fine["preferences"]),
                       [coarse["base"]["mean_rewards"]]])
    frame = minmax_frame(union)
    rows, pairs = [], []
    for entry, key in zip(served, weights(served)):
        trained = fine_by_weights.get(key)
        if trained is None:
            continue
        gap = np.asarray(entry["mean_rewards"]) - np.asarray(trained["mean_rewards"])
        pairs.append({"weights": entry["weights"], "interpolated": entry["mean_rewards"],
                      "trained": trained["mean_rewards"], "difference": gap.tolist()})
        rows.append([format_vector(entry["weights"], ".2f"), format_vector(entry["mean_rewards"], ".3f"),
                     format_vector(trained["mean_rewards"], ".3f"), format_vector(gap, "+.3f")])
    volumes = {"coarse_trained": frame.hypervolume(points(coarse["preferences"])),
               "coarse_trained_plus_interpolated": frame.hypervolume(np.vstack([points(coarse["preferences"]),
                                                                               points(served)])),
               "fine_trained": frame.hypervolume(points(fine["preferences"]))}
    table = format_table(["weights", "interpolated", "trained for it", "interpolated - trained"], rows)
    return table, {"pairs": pairs, "hypervolume_union_frame": volumes, "frame": frame}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="/tmp/paretohqd-bench/interpolation", help="run directories go here")
    parser.add_argument("--n-points", type=int, default=6, help="preferences of the coarse grid (default 6)")
    parser.add_argument("--trained-midpoints", action="store_true",
                        help="also train the fine grid (coarse + midpoints) and compare at each midpoint")
    parser.add_argument("--json", default=None, help="write the figures here as JSON")
    parser.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap replicates over test prompts")
    parser.add_argument("overrides", nargs="*", help="config overrides for both runs (--select.k 32 ...)")
    args, unknown = parser.parse_known_args()
    extra = [*args.overrides, *unknown]
    out = Path(args.out)
    print(f"coarse grid: {args.n_points} preferences, midpoints served by interpolation -> {out / 'coarse'}")
    coarse, coarse_seconds = run(out, "coarse", args.n_points, True, extra)
    table, records = served_table(coarse)
    serving_seconds = unit_seconds(out / "coarse", "generate/served_")
    training_seconds = unit_seconds(out / "coarse", "train/")
    result = {"n_points": args.n_points, "objectives": coarse["objectives"], "served": records,
              HV_RUN_WORST: coarse[HV_RUN_WORST], HV_RUN_WORST_SERVED: coarse[HV_RUN_WORST_SERVED],
              "between_neighbours": sum(r["between_neighbours"] for r in records),
              "dominated_by_trained": sum(r["dominated_by_trained"] for r in records),
              "coarse_run_seconds": coarse_seconds, "coarse_training_seconds": training_seconds,
              "served_generation_seconds": serving_seconds}
    print()
    print(table)
    print(f"between their two neighbours on every objective: {result['between_neighbours']} of {len(records)}; "
          f"dominated by a trained point: {result['dominated_by_trained']} of {len(records)}")
    print(f"hypervolume on the run's frame (min-max over trained and base points, worst corner): trained "
          f"{coarse[HV_RUN_WORST]:.4f}, trained + interpolated {coarse[HV_RUN_WORST_SERVED]:.4f}")
    print(f"cost: {training_seconds:.0f} s in the {count_units(out / 'coarse', 'train/')} training units (both "
          f"stages), {serving_seconds:.0f} s building the {len(records)} interpolated models and answering with them")
    if args.trained_midpoints:
        fine_points = 2 * (args.n_points - 1) + 1
        print(f"\nfine grid: {fine_points} preferences, the midpoints trained -> {out / 'fine'}")
        fine, fine_seconds = run(out, "fine", fine_points, False, extra)
        table, comparison = against_trained(coarse, fine)
        volumes = comparison["hypervolume_union_frame"]
        spread = bootstrap_fronts(out, coarse, fine, comparison["frame"], args.bootstrap, 0)
        comparison.update(frame=comparison["frame"].to_dict(), bootstrap=spread)
        result.update(trained_midpoints=comparison, fine_run_seconds=fine_seconds,
                      fine_training_seconds=unit_seconds(out / "fine", "train/"))
        print()
        print(table)
        print(f"hypervolume on one frame (min-max over both runs' points and the base, worst corner): coarse "
              f"trained {volumes['coarse_trained']:.4f}, coarse + interpolated "
              f"{volumes['coarse_trained_plus_interpolated']:.4f}, fine trained {volumes['fine_trained']:.4f}")
        intervals = spread["interval_95"]
        print(f"95% bootstrap intervals over the {spread['num_test_prompts']} test prompts ({spread['replicates']} "
              "paired replicates): " + ", ".join(f"{key.replace('_', ' ')} [{low:.4f}, {high:.4f}]"
                                                 for key, (low, high) in intervals.items()))
        print(f"P(coarse + interpolated > fine trained) = {spread['p_interpolated_beats_fine']:.3f}; "
              f"P(coarse + interpolated > coarse trained) = {spread['p_interpolated_beats_coarse']:.3f}")
        print(f"cost: the fine grid's {count_units(out / 'fine', 'train/')} training units took "
              f"{result['fine_training_seconds']:.0f} s, the coarse grid's {count_units(out / 'coarse', 'train/')} "
              f"{training_seconds:.0f} s plus {serving_seconds:.0f} s for the interpolated models (seconds from the "
              "manifests: they depend on what else the machine ran meanwhile)")
    if args.json:
        io.write_json(Path(args.json), result)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
