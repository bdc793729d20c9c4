"""The chunked selection is the in-memory selection: same pool, layers, statistics and per-preference samples."""

import numpy as np
import pytest

from paretohqd.pareto import (
    chunked_candidate_pool,
    fit_normalisation,
    linear_grid,
    ric_grid_3,
    select_for_preferences,
    select_for_preferences_chunked,
)


def split(points, size):
    """Consecutive chunks of ``size`` rows (the last one shorter)."""
    return [points[start:start + size] for start in range(0, len(points), size)]


def uneven_split(points, seed):
    """Chunks of random sizes, empty ones included."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.integers(0, len(points) + 1, size=12))
    return np.split(points, cuts)


def gaussian(n, m, seed, rho=0.3):
    cov = np.full((m, m), rho)
    np.fill_diagonal(cov, 1.0)
    return np.random.default_rng(seed).standard_normal((n, m)) @ np.linalg.cholesky(cov).T


def grid(m):
    return linear_grid(11) if m == 2 else ric_grid_3()


def assert_same_selection(chunked, expected):
    assert np.array_equal(chunked.pool_indices, expected.pool_indices)
    assert np.array_equal(chunked.pool_layers, expected.pool_layers)
    assert chunked.num_layers == expected.num_layers
    assert chunked.stats == expected.stats
    assert chunked.stats.method == expected.stats.method and chunked.stats.quantiles == expected.stats.quantiles
    assert (chunked.k, chunked.min_pool, chunked.metric, chunked.maximise) == \
        (expected.k, expected.min_pool, expected.metric, expected.maximise)
    assert len(chunked) == len(expected)
    for got, want in zip(chunked, expected):
        for field in ("weights", "direction", "indices", "distances", "layers"):
            assert np.array_equal(getattr(got, field), getattr(want, field)), field
        assert got.indices.dtype == want.indices.dtype


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("chunk_size", [1, 7, 100, 10_000])
def test_chunk_sizes_give_the_in_memory_selection(m, chunk_size):
    n = 300 if chunk_size == 1 else 1500
    X = gaussian(n, m, seed=m)
    # min_pool well beyond the first layer, so the pool spans several layers.
    expected = select_for_preferences(X, grid(m), k=12, min_pool=120, maximise=True)
    assert expected.num_layers > 2
    got = select_for_preferences_chunked(split(X, chunk_size), grid(m), k=12, min_pool=120, maximise=True)
    assert_same_selection(got, expected)


@pytest.mark.parametrize("order", ["best_first", "worst_first"])
def test_sorted_streams(order):
    # The first chunk is the only guide to the layer bound: all of the pool, or none of it.
    X = gaussian(3000, 2, seed=16)
    total = X.sum(axis=1)
    X = X[np.argsort(-total if order == "best_first" else total, kind="stable")]
    expected = select_for_preferences(X, grid(2), k=20, min_pool=250, maximise=True)
    got = select_for_preferences_chunked(lambda: iter(split(X, 400)), grid(2), k=20, min_pool=250, maximise=True)
    assert_same_selection(got, expected)


@pytest.mark.parametrize("m", [2, 3])
def test_duplicates_and_distance_ties(m):
    # Few distinct values: many exact copies (which share a layer) and many equal distances (broken by index).
    X = np.random.default_rng(5).integers(0, 6, size=(2000, m)).astype(float)
    for chunks in (split(X, 33), uneven_split(X, 1)):
        expected = select_for_preferences(X, grid(m), k=25, min_pool=200, maximise=True)
        assert_same_selection(select_for_preferences_chunked(chunks, grid(m), k=25, min_pool=200, maximise=True),
                              expected)


@pytest.mark.parametrize("metric", ["perpendicular", "angle", "weighted_sum"])
def test_metrics_and_minimising(metric):
    X = gaussian(1200, 2, seed=9, rho=-0.4)
    for maximise in (True, False):
        expected = select_for_preferences(X, grid(2), k=10, min_pool=90, metric=metric, maximise=maximise)
        got = select_for_preferences_chunked(split(X, 250), grid(2), k=10, min_pool=90, metric=metric,
                                             maximise=maximise)
        assert_same_selection(got, expected)


def test_default_min_pool_and_pool_of_everything():
    X = gaussian(2500, 2, seed=3)
    # Default P_min (2,000 for M=2) on 2,500 points, and a min_pool above n: every point is in the pool.
    for min_pool in (None, 10_000):
        expected = select_for_preferences(X, grid(2), k=50, min_pool=min_pool, maximise=True)
        got = select_for_preferences_chunked(split(X, 400), grid(2), k=50, min_pool=min_pool, maximise=True)
        assert_same_selection(got, expected)
    assert expected.pool_indices.size == len(X)


def test_one_objective():
    X = np.round(gaussian(800, 1, seed=2), 1)
    expected = select_for_preferences(X, [[1.0]], k=20, min_pool=60, maximise=True)
    assert_same_selection(select_for_preferences_chunked(split(X, 90), [[1.0]], k=20, min_pool=60, maximise=True),
                          expected)


def test_a_small_layer_bound_costs_passes_not_exactness():
    X = gaussian(3000, 3, seed=4)
    expected = select_for_preferences(X, grid(3), k=30, min_pool=400, maximise=True)
    calls = []

    def source():
        calls.append(1)
        return iter(split(X, 500))

    found = chunked_candidate_pool(source, min_pool=400, maximise=True, layer_bound=1)
    assert found.passes == len(calls) > 1
    assert found.layer_bound >= found.pool.num_layers == expected.num_layers
    assert np.array_equal(found.pool.indices, expected.pool_indices)
    assert np.array_equal(found.pool_points, X[expected.pool_indices])
    assert found.max_candidates < len(X)
    got = select_for_preferences_chunked(source, grid(3), k=30, min_pool=400, maximise=True, layer_bound=1)
    assert_same_selection(got, expected)


def test_a_one_shot_iterator_works_in_one_pass_and_says_so_when_it_cannot():
    X = gaussian(2000, 2, seed=6)
    expected = select_for_preferences(X, grid(2), k=10, min_pool=100, maximise=True)
    got = select_for_preferences_chunked(iter(split(X, 300)), grid(2), k=10, min_pool=100, maximise=True,
                                         layer_bound=expected.num_layers)
    assert_same_selection(got, expected)
    with pytest.raises(ValueError, match=r"second pass.*one-shot iterator"):
        select_for_preferences_chunked((c for c in split(X, 300)), grid(2), k=10, min_pool=100, maximise=True,
                                       layer_bound=1)


def test_robust_normalisation_is_exact():
    rng = np.random.default_rng(8)
    X = gaussian(5003, 3, seed=8)
    X[:, 2] = np.where(rng.uniform(size=len(X)) < 0.9995, 0.0, rng.uniform(1, 2, len(X)))  # quantiles coincide
    for quantiles in ((0.001, 0.999), (0.1, 0.75), (0.0, 1.0)):
        expected = select_for_preferences(X, grid(3), k=20, min_pool=300, normalisation="robust",
                                          quantiles=quantiles, maximise=True)
        got = select_for_preferences_chunked(lambda: iter(split(X, 701)), grid(3), k=20, min_pool=300,
                                             normalisation="robust", quantiles=quantiles, maximise=True)
        assert_same_selection(got, expected)
        assert got.stats == fit_normalisation(X, "robust", quantiles)
    tiny = X[:1]
    pool = chunked_candidate_pool([tiny], min_pool=1, normalisation="robust", maximise=True)
    assert pool.pool.stats == fit_normalisation(tiny, "robust")


def test_robust_quantiles_match_numpy_to_the_last_bit():
    # numpy interpolates from the upper neighbour when the fraction is >= 0.5, which can differ from a + (b - a) t in
    # the last bit. Here the 0.9 quantile of 5,003 values falls at 80% of the way from -0.363 (order statistic 4501)
    # to 0.27 (4502), a pair for which the two formulas differ.
    rng = np.random.default_rng(14)
    n = 5003
    column = np.concatenate([rng.uniform(-2, -0.5, 4501), [-0.363, 0.27], rng.uniform(0.5, 2, n - 4503)])
    X = np.stack([rng.permutation(column), rng.standard_normal(n)], axis=1)
    quantiles = (0.25, 0.9)
    expected = fit_normalisation(X, "robust", quantiles)
    assert expected.high[0] != -0.363 + (0.27 + 0.363) * ((n - 1) * 0.9 - 4501)  # the case is the one meant
    found = chunked_candidate_pool(lambda: iter(split(X, 1000)), min_pool=10, normalisation="robust",
                                   quantiles=quantiles, maximise=True)
    assert np.array_equal(found.pool.stats.low, expected.low)
    assert np.array_equal(found.pool.stats.high, expected.high)


def test_given_stats_are_used():
    X = gaussian(900, 2, seed=11)
    stats = fit_normalisation(X[:100])
    expected = select_for_preferences(X, grid(2), k=15, min_pool=80, stats=stats.to_dict(), maximise=True)
    got = select_for_preferences_chunked(split(X, 128), grid(2), k=15, min_pool=80, stats=stats.to_dict(),
                                         maximise=True)
    assert_same_selection(got, expected)


def test_errors_match_the_in_memory_messages():
    X = gaussian(500, 2, seed=12)
    X[321, 1] = np.nan
    with pytest.raises(ValueError) as in_memory:  # noqa: PT011 (compared with the chunked one)
        select_for_preferences(X, grid(2), k=5, min_pool=50, names=["a", "b"])
    with pytest.raises(ValueError) as chunked:  # noqa: PT011
        select_for_preferences_chunked(split(X, 100), grid(2), k=5, min_pool=50, names=["a", "b"])
    assert str(chunked.value) == str(in_memory.value) == "scores contain NaN in objective 'b' (row 321)"

    X = gaussian(500, 2, seed=12)
    for k in (60, 600):
        with pytest.raises(ValueError) as in_memory:  # noqa: PT011 (compared with the chunked one)
            select_for_preferences(X, grid(2), k=k, min_pool=50)
        with pytest.raises(ValueError) as chunked:  # noqa: PT011
            select_for_preferences_chunked(split(X, 100), grid(2), k=k, min_pool=50)
        assert str(chunked.value) == str(in_memory.value)
    with pytest.raises(ValueError, match="preference 0 has 3 weights"):
        select_for_preferences_chunked(split(X, 100), [[0.2, 0.3, 0.5]], k=5, min_pool=50)
    with pytest.raises(ValueError, match="chunk at row 100 has 3 objectives"):
        select_for_preferences_chunked([X[:100], np.zeros((5, 3))], grid(2), k=5)
    with pytest.raises(ValueError, match="empty"):
        select_for_preferences_chunked([np.empty((0, 2))], grid(2), k=5)
    with pytest.raises(ValueError, match="normalisation must be one of"):
        select_for_preferences_chunked(split(X, 100), grid(2), k=5, normalisation="zscore")
    with pytest.raises(ValueError, match="stats have 3 objectives but the scores have 2"):
        select_for_preferences_chunked(split(X, 100), grid(2), k=5, stats=fit_normalisation(np.zeros((2, 3))))
    with pytest.raises(ValueError, match=r"robust normalisation needs exact quantiles.*one-shot"):
        select_for_preferences_chunked(iter(split(X, 100)), grid(2), k=5, normalisation="robust")


def test_a_source_that_changes_between_passes_is_refused():
    X = gaussian(600, 2, seed=15)
    served = []

    def shrinking():
        served.append(1)
        return iter(split(X[: len(X) - 10 * (len(served) - 1)], 100))

    with pytest.raises(ValueError, match="same data on every pass"):
        chunked_candidate_pool(shrinking, min_pool=50, normalisation="robust")
    served.clear()
    with pytest.raises(ValueError, match="same data on every pass"):
        chunked_candidate_pool(shrinking, min_pool=300, layer_bound=1)
