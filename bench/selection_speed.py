"""Benchmark: the whole ParetoHqD selection vs ranking everything with moocore.pareto_rank.

Generates equicorrelated Gaussian reward vectors, times ``select_for_preferences`` (normalise over all points,
first Pareto layers until ``--min-pool`` samples, ``--k`` nearest samples per preference ray) and
``moocore.pareto_rank(points, maximise=True)`` on the same array in the same process (median of ``--repeats``),
checks that every layer we report equals moocore's rank on those points, prints a table and, as its last line,
``selection_vs_moocore_ratio=<ours / moocore>``.

    python bench/selection_speed.py                                   # 1,000,000 x 3, correlated
    python bench/selection_speed.py --distribution anticorrelated
    python bench/selection_speed.py --n 10000000 --m 2 --min-pool 2000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from paretohqd.pareto import das_dennis, linear_grid, nondominated_layers, ric_grid_3, select_for_preferences

# Equicorrelated Gaussians need rho > -1/(M-1); "anticorrelated" uses 80% of that bound.
RHO = {"correlated": lambda m: 0.5, "independent": lambda m: 0.0, "anticorrelated": lambda m: -0.8 / max(1, m - 1)}


def scores(n: int, m: int, rho: float, seed: int) -> np.ndarray:
    cov = np.full((m, m), rho)
    np.fill_diagonal(cov, 1.0)
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, m)) @ np.linalg.cholesky(cov).T


def grid(m: int, n_preferences: int) -> tuple[np.ndarray, str]:
    """M=2: the paper's linear grid of ``--preferences`` points; M>=3: ``--preferences`` rows spread evenly over
    RiC's 13 vectors (M=3) or a Das-Dennis grid (M>3)."""
    if m == 2:
        return linear_grid(n_preferences), f"linear, {n_preferences} points"
    full, name = (ric_grid_3(), "RiC's 13 vectors") if m == 3 else (das_dennis(3, m), "Das-Dennis(3)")
    rows = np.unique(np.linspace(0, len(full) - 1, min(n_preferences, len(full))).round().astype(int))
    return full[rows], f"{len(rows)} of {name}"


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="number of scored samples")
    parser.add_argument("--m", type=int, default=3, help="number of objectives")
    parser.add_argument("--preferences", type=int, default=11, help="number of preferences")
    parser.add_argument("--min-pool", type=int, default=None, help="P_min (default 2000 for M=2, 5000 for M>=3)")
    parser.add_argument("--k", type=int, default=100, help="samples per preference")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions (median reported)")
    parser.add_argument("--moocore-repeats", type=int, default=None, help="repetitions for moocore (default --repeats)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--distribution", choices=sorted(RHO), default="correlated")
    parser.add_argument("--rho", type=float, default=None, help="override the pairwise correlation")
    args = parser.parse_args(argv)

    import moocore

    rho = RHO[args.distribution](args.m) if args.rho is None else args.rho
    min_pool = args.min_pool if args.min_pool is not None else (2_000 if args.m <= 2 else 5_000)
    points = scores(args.n, args.m, rho, args.seed)
    weights, grid_name = grid(args.m, args.preferences)
    print(f"n={args.n:,}  M={args.m}  {args.distribution} (rho={rho:g})  min_pool={min_pool}  k={args.k}")
    print(f"preferences: {grid_name}")

    # One untimed call so that first-touch page faults and lazy imports do not count against either side.
    select_for_preferences(points, weights, k=args.k, min_pool=min_pool)
    t_select, selection = timed(
        lambda: select_for_preferences(points, weights, k=args.k, min_pool=min_pool), args.repeats
    )
    t_layers, _ = timed(lambda: nondominated_layers(points, min_count=min_pool), args.repeats)
    t_moocore, ranks = timed(lambda: moocore.pareto_rank(points, maximise=True), args.moocore_repeats or args.repeats)
    ranks = np.asarray(ranks)

    # Exactness: the pool is exactly moocore's first L layers and every reported layer is moocore's rank.
    L = selection.num_layers
    assert np.array_equal(selection.pool_indices, np.flatnonzero(ranks < L)), "pool differs from moocore's layers"
    assert np.array_equal(selection.pool_layers, ranks[selection.pool_indices]), "layer differs from moocore's rank"
    cum = np.cumsum(np.bincount(ranks))
    assert cum[L - 1] >= min(min_pool, args.n) and (L == 1 or cum[L - 2] < min_pool), "L is not the smallest"

    ratio = t_select / t_moocore
    rows = [
        ("paretohqd select_for_preferences (normalise + layers + k per preference)", t_select),
        ("  of which nondominated_layers(min_count=min_pool) alone", t_layers),
        ("moocore.pareto_rank(points, maximise=True), all layers", t_moocore),
    ]
    pool_size = selection.pool_indices.size
    print(f"pool: {pool_size:,} samples in L={L} layers (moocore ranks {int(ranks.max()) + 1} layers in all)")
    print(f"{'step':<76}{'median s':>10}")
    for name, seconds in rows:
        print(f"{name:<76}{seconds:>10.4f}")
    print(f"speed-up over moocore: {1 / ratio:,.1f}x (layers identical to moocore's ranks: yes)")
    print(f"selection_vs_moocore_ratio={ratio:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
