"""The ParetoHqD selection: the preference is a direction, not a weighted sum (docs/concepts/selection.md)."""

import json

import numpy as np
import pytest

from paretohqd.pareto import (
    NormalisationStats,
    check_finite_scores,
    default_k,
    default_min_pool,
    fit_normalisation,
    linear_grid,
    nondominated_layers,
    ric_grid_3,
    select_for_preferences,
)

from .test_pareto_layers import oracle_layers


def convex_front(n=4000, seed=0):
    """Points on or below the quarter circle x^2 + y^2 = 1 (a convex front when maximising)."""
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0, np.pi / 2, n)
    radius = 1.0 - 0.3 * rng.uniform(0, 1, n) ** 2
    return np.stack([radius * np.cos(theta), radius * np.sin(theta)], axis=1)


def concave_front(n=4000, p=0.5, seed=0):
    """Points on or below the curve x^p + y^p = 1 with p < 1 (a concave front: it bends towards the origin)."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(0, 1, n)
    scale = 1.0 - 0.3 * rng.uniform(0, 1, n) ** 2
    return np.stack([scale * u ** (1 / p), scale * (1 - u) ** (1 / p)], axis=1)


@pytest.mark.parametrize("make", [convex_front, concave_front])
def test_more_weight_on_objective_one_selects_more_of_it(make):
    X = make()
    W = linear_grid(11)  # w1 = 0, 0.1, ..., 1
    selection = select_for_preferences(X, W, k=40, min_pool=400)
    mean_1 = np.array([X[r.indices, 0].mean() for r in selection])
    mean_2 = np.array([X[r.indices, 1].mean() for r in selection])
    assert np.all(np.diff(mean_1) > 0), mean_1
    assert np.all(np.diff(mean_2) < 0), mean_2
    # The extremes sit at the ends of the front.
    assert mean_1[-1] > 0.85 and mean_2[0] > 0.85


def test_ray_reaches_the_middle_of_a_concave_front_where_a_weighted_sum_cannot():
    X = concave_front()
    selection = select_for_preferences(X, [0.5, 0.5], k=40, min_pool=400)
    z = selection.stats.apply(X)
    ray_pick = selection[0].indices
    pool = selection.pool_indices
    weighted_sum_pick = pool[np.argsort(-(z[pool] @ [0.5, 0.5]), kind="stable")[:40]]
    # select.metric: weighted_sum is that scalarisation, on the same pool
    ablation = select_for_preferences(X, [0.5, 0.5], k=40, min_pool=400, metric="weighted_sum")[0]
    np.testing.assert_array_equal(ablation.indices, weighted_sum_pick)
    np.testing.assert_allclose(ablation.distances, -(z[weighted_sum_pick] @ [0.5, 0.5]))
    three = np.random.default_rng(5).random((500, 3))
    picked = select_for_preferences(three, [0.2, 0.3, 0.5], k=7, min_pool=500, metric="weighted_sum")[0]
    z3 = select_for_preferences(three, [0.2, 0.3, 0.5], k=7, min_pool=500).stats.apply(three)
    np.testing.assert_array_equal(picked.indices, np.argsort(-(z3 @ [0.2, 0.3, 0.5]), kind="stable")[:7])
    ray_gap = np.abs(z[ray_pick, 0] - z[ray_pick, 1]).mean()
    sum_gap = np.abs(z[weighted_sum_pick, 0] - z[weighted_sum_pick, 1]).mean()
    assert ray_gap < 0.1  # balanced samples from the middle of the front
    assert sum_gap > 0.8  # the weighted sum only finds the two extremes


def test_result_structure_and_pool():
    X = convex_front(3000, seed=1)
    selection = select_for_preferences(X, linear_grid(5), k=25, min_pool=300)
    layers = nondominated_layers(X, min_count=300)
    np.testing.assert_array_equal(selection.pool_indices, np.flatnonzero(layers >= 0))
    np.testing.assert_array_equal(selection.pool_layers, layers[selection.pool_indices])
    assert selection.num_layers == layers.max() + 1
    assert selection.pool_indices.size >= 300
    assert len(selection) == 5
    for result in selection:
        assert result.indices.shape == result.distances.shape == result.layers.shape == (25,)
        assert np.all(np.diff(result.distances) >= 0)
        assert np.isin(result.indices, selection.pool_indices).all()
        np.testing.assert_array_equal(result.layers, layers[result.indices])
        np.testing.assert_allclose(np.linalg.norm(result.direction), 1.0)
    json.dumps(selection.summary())
    json.dumps(selection[0].to_dict())


def test_selection_is_the_k_nearest_in_the_pool():
    X = convex_front(2000, seed=2)
    selection = select_for_preferences(X, [0.3, 0.7], k=30, min_pool=200)
    z = selection.stats.apply(X[selection.pool_indices])
    d = selection[0].direction
    v = z - 1
    t = np.maximum(v @ d, 0)
    dist = np.linalg.norm(v - t[:, None] * d, axis=1)
    expected = selection.pool_indices[np.lexsort((selection.pool_indices, dist))[:30]]
    np.testing.assert_array_equal(selection[0].indices, expected)


def test_ties_are_broken_by_index_and_results_are_deterministic():
    X = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    X = np.tile(X, (5, 1))  # each point five times: equal distances
    a = select_for_preferences(X, [[0.5, 0.5]], k=3, min_pool=15)
    b = select_for_preferences(X, [[0.5, 0.5]], k=3, min_pool=15)
    np.testing.assert_array_equal(a[0].indices, [1, 4, 7])
    np.testing.assert_array_equal(a[0].indices, b[0].indices)


def test_three_objectives_one_hot_prefers_its_objective():
    rng = np.random.default_rng(3)
    X = rng.dirichlet(np.ones(3), 5000) * rng.uniform(0.7, 1.0, (5000, 1))
    selection = select_for_preferences(X, ric_grid_3(), k=50, min_pool=1000)
    means = np.array([X[r.indices].mean(axis=0) for r in selection])
    assert means[-1, 0] == means[:, 0].max()  # (1, 0, 0)
    assert means[0, 2] == means[:, 2].max()  # (0, 0, 1)
    assert means[1, 1] == means[:, 1].max()  # (0, 1, 0)


def test_stats_given_robust_and_minimise():
    X = convex_front(2000, seed=4)
    W = linear_grid(3)
    fitted = select_for_preferences(X, W, k=20, min_pool=200)
    given = select_for_preferences(X, W, k=20, min_pool=200, stats=fitted.stats.to_dict())
    for a, b in zip(fitted, given):
        np.testing.assert_array_equal(a.indices, b.indices)
    robust = select_for_preferences(X, W, k=20, min_pool=200, normalisation="robust", quantiles=(0.01, 0.99))
    assert robust.stats.method == "robust" and robust.stats.quantiles == (0.01, 0.99)
    flipped = select_for_preferences(-X, W, k=20, min_pool=200, maximise=False)
    for a, b in zip(fitted, flipped):
        np.testing.assert_array_equal(a.indices, b.indices)
    angle = select_for_preferences(X, W, k=20, min_pool=200, metric="angle")
    assert angle.metric == "angle"


@pytest.mark.parametrize("n, k, expected", [(500, 10, 50), (320_000, 100, 2_000), (5_550, 100, 500),
                                             (50_000, 10, 313), (30, 100, 30)])
def test_the_default_pool_scales_with_the_data(n, k, expected):
    """The paper's share of the data (2,000 of 320,000), at least 5k, at most n."""
    assert default_min_pool(n, k) == expected


@pytest.mark.parametrize("n, kwargs, expected", [
    (800, {}, 100), (320_000, {}, 100), (1_000_000, {}, 313), (3_200_000, {}, 1_000),
    (800, {"fraction": 0.05, "minimum": 10}, 40), (100, {"fraction": 0.05, "minimum": 10}, 10)])
def test_the_default_k_is_the_papers_share_of_the_data_with_a_floor(n, kwargs, expected):
    """The paper's 100 of ~320,000; below that size the floor (the paper's 100) keeps it trainable."""
    assert default_k(n, **kwargs) == expected


def test_the_default_pool_is_a_thin_band_at_any_size():
    for n in (500, 5_000):
        X = convex_front(n, seed=5)
        selection = select_for_preferences(X, [0.5, 0.5], k=10)
        layers = oracle_layers(X)  # the pool is the smallest set of whole first layers holding P_min
        needed = default_min_pool(n, 10)
        depth = int(np.searchsorted(np.cumsum(np.bincount(layers)), needed)) + 1
        assert selection.min_pool == needed
        np.testing.assert_array_equal(selection.pool_indices, np.flatnonzero(layers < depth))
        assert selection.pool_indices.size < 0.2 * n


def test_normalisation_stats():
    X = np.array([[0.0, 5.0, 1.0], [2.0, 5.0, 3.0], [1.0, 5.0, 2.0]])
    stats = fit_normalisation(X)
    z = stats.apply(X)
    np.testing.assert_allclose(z[:, 0], [0, 1, 0.5])
    np.testing.assert_allclose(z[:, 1], 1.0)  # constant objective: at its ideal, no division by zero
    np.testing.assert_allclose(stats.apply(X, maximise=False)[:, 0], [1, 0, 0.5])
    again = NormalisationStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert again == stats and again != fit_normalisation(X + 1)
    np.testing.assert_array_equal(again.apply(X), z)
    robust = fit_normalisation(np.arange(1001.0)[:, None], method="robust", quantiles=(0.1, 0.9))
    np.testing.assert_allclose([robust.low[0], robust.high[0]], [100, 900])
    np.testing.assert_allclose(robust.apply([[0.0], [500.0], [1000.0]])[:, 0], [0, 0.5, 1])  # clipped


def test_check_finite_scores_names_the_objective():
    X = np.ones((4, 2))
    X[2, 1] = -np.inf
    with pytest.raises(ValueError, match=r"scores contain -inf in objective 'helpful' \(row 2\)"):
        check_finite_scores(X, names=["harmless", "helpful"])
    assert check_finite_scores(np.ones((3, 2), dtype=np.float32)).dtype == np.float64


def scores_with_nan():
    X = convex_front(30, seed=6)
    X[17, 1] = np.nan
    return X


@pytest.mark.parametrize(
    "points, weights, kwargs, message",
    [
        (scores_with_nan(), [0.5, 0.5], {}, r"scores contain NaN in objective 1 \(row 17\)"),
        (convex_front(120), [0.5, 0.5], {"k": 500}, r"k=500 is larger than the candidate pool of 120 samples"),
        (convex_front(120), [0.5, 0.5], {"k": 50, "min_pool": 5},
         r"k=50 is larger than the candidate pool of \d+ samples \(the first \d+ Pareto layers, min_pool=5\)"),
        (convex_front(50), [0.5, 0.5], {"k": 0}, "k must be at least 1, got 0"),
        (convex_front(50), [[1, 0], [0.2, 0.3, 0.5]], {}, "preference 1 has 3 weights but there are 2 objectives"),
        (convex_front(50), [[0, 0]], {}, "preference 0 is all zeros"),
        (convex_front(50), [[1, 0], [1.1, -0.1]], {}, "preference 1 has a negative weight -0.1"),
        (convex_front(50), [0.5, 0.5], {"k": 5, "metric": "cosine"}, "metric must be one of perpendicular, angle"),
        (convex_front(50), [0.5, 0.5], {"k": 5, "normalisation": "zscore"}, "normalisation must be one of minmax"),
        (convex_front(50), [0.5, 0.5], {"k": 5, "quantiles": (0.9, 0.1), "normalisation": "robust"},
         "quantiles must be two numbers with 0 <= lower < upper <= 1"),
        (convex_front(50), [0.5, 0.5], {"k": 5, "stats": {"method": "minmax", "low": [0, 0, 0], "high": [1, 1, 1]}},
         "normalisation stats have 3 objectives but the scores have 2"),
        (np.zeros((0, 2)), [0.5, 0.5], {}, r"scores is empty"),
        (convex_front(50), [0.5, 0.5], {"k": 5, "stats": {"method": "minmax", "low": [0, 2], "high": [1, 1]}},
         r"normalisation high \(1.0\) is below low \(2.0\) for objective 1"),
    ],
)
def test_bad_input(points, weights, kwargs, message):
    with pytest.raises(ValueError, match=message):
        select_for_preferences(points, weights, **kwargs)


@pytest.mark.parametrize("metric", ["perpendicular", "angle", "weighted_sum"])
def test_one_objective_selects_the_best_samples(metric):
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(500, 1))
    scores[7] = scores[8]  # a tie, broken by index
    selection = select_for_preferences(scores, [[1.0]], k=25, min_pool=100, metric=metric, maximise=True)
    best = np.lexsort((np.arange(500), -scores[:, 0]))[:25]
    np.testing.assert_array_equal(selection[0].indices, best)
    assert np.all(np.diff(selection[0].distances) >= 0)
