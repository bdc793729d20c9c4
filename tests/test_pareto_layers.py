"""Pareto layers against a brute-force oracle and moocore.pareto_rank (maximise=True), on awkward inputs."""

import moocore
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from paretohqd.pareto import first_layers_pool, nondominated_layers
from paretohqd.pareto import layers as layers_mod


def oracle_layers(points, maximise=True):
    """O(n^2) non-dominated sorting, written to be obviously right: peel the points no remaining point dominates."""
    X = np.asarray(points, dtype=float)
    if not maximise:
        X = -X
    # dom[a, b]: a >= b everywhere and a > b somewhere.
    ge = (X[:, None, :] >= X[None, :, :]).all(axis=2)
    gt = (X[:, None, :] > X[None, :, :]).any(axis=2)
    dom = ge & gt
    ranks = np.full(len(X), -1)
    remaining = np.ones(len(X), dtype=bool)
    layer = 0
    while remaining.any():
        dominated = (dom & remaining[:, None]).any(axis=0)
        front = remaining & ~dominated
        ranks[front] = layer
        remaining &= ~front
        layer += 1
    return ranks


def expected_cut(full, max_layers=None, min_count=None):
    """What the limits should report, computed from exact full ranks."""
    stop = full.max() + 1
    if min_count is not None:
        cum = np.cumsum(np.bincount(full))
        if cum[-1] >= min_count:
            stop = min(stop, int(np.searchsorted(cum, min_count)) + 1)
    if max_layers is not None:
        stop = min(stop, max_layers)
    return np.where(full < stop, full, -1)


def correlated(n, m, rho, seed):
    rng = np.random.default_rng(seed)
    cov = np.full((m, m), rho)
    np.fill_diagonal(cov, 1.0)
    return rng.standard_normal((n, m)) @ np.linalg.cholesky(cov).T


def make(kind, n, m, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.standard_normal((n, m))
    if kind == "ties":
        return rng.integers(0, 4, size=(n, m)).astype(float)
    if kind == "duplicates":
        base = rng.standard_normal((max(1, n // 4), m))
        return base[rng.integers(0, len(base), size=n)]
    if kind == "sorted":
        X = rng.standard_normal((n, m))
        return X[np.argsort(X[:, 0])]
    if kind == "reverse_sorted":
        X = rng.standard_normal((n, m))
        return X[np.argsort(-X.sum(axis=1))]
    if kind == "constant_objective":
        X = rng.standard_normal((n, m))
        X[:, -1] = 3.0
        return X
    if kind == "simplex":  # anti-correlated: every point on the simplex, so all are mutually non-dominated
        return rng.dirichlet(np.ones(m), size=n) if m > 1 else np.ones((n, 1))
    if kind == "near_simplex":
        return rng.dirichlet(np.ones(m), size=n) * rng.uniform(0.8, 1.0, size=(n, 1))
    raise AssertionError(kind)


KINDS = ["random", "ties", "duplicates", "sorted", "reverse_sorted", "constant_objective", "simplex", "near_simplex"]


@pytest.mark.parametrize("m", [1, 2, 3, 4])
@pytest.mark.parametrize("kind", KINDS)
def test_full_ranks_match_oracle_and_moocore(kind, m):
    X = make(kind, 300, m, seed=m)
    expected = oracle_layers(X)
    ours = nondominated_layers(X, maximise=True)
    np.testing.assert_array_equal(ours, expected)
    if m >= 2:  # moocore's rank of one objective is also distinct values, but check the oracle against it anyway
        np.testing.assert_array_equal(np.asarray(moocore.pareto_rank(X, maximise=True)), expected)
    assert ours.dtype == np.int64


@pytest.mark.parametrize("m", [1, 2, 3, 4])
@pytest.mark.parametrize("kind", ["random", "ties", "duplicates", "near_simplex"])
def test_limits_report_exact_prefix(kind, m):
    X = make(kind, 250, m, seed=10 + m)
    full = oracle_layers(X)
    for max_layers in (None, 1, 2, 5):
        for min_count in (None, 1, 7, 60, 249, 250, 1000):
            got = nondominated_layers(X, max_layers=max_layers, min_count=min_count)
            np.testing.assert_array_equal(got, expected_cut(full, max_layers, min_count))


def test_minimise_is_maximise_of_negated():
    X = make("ties", 200, 3, seed=3)
    np.testing.assert_array_equal(nondominated_layers(X, maximise=False), oracle_layers(X, maximise=False))
    np.testing.assert_array_equal(nondominated_layers(X, maximise=False), nondominated_layers(-X))
    np.testing.assert_array_equal(
        nondominated_layers(X, maximise=False), np.asarray(moocore.pareto_rank(X, maximise=False))
    )


def test_duplicates_share_a_layer():
    X = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [0.0, 0.0], [1.0, 2.0], [0.0, 0.0], [2.0, 2.0]])
    np.testing.assert_array_equal(nondominated_layers(X), [1, 1, 1, 2, 1, 2, 0])


def test_weak_dominance_equal_in_one_objective():
    # (2, 1) dominates (2, 0): equal in the first objective, better in the second.
    np.testing.assert_array_equal(nondominated_layers([[2.0, 0.0], [2.0, 1.0], [1.0, 5.0]]), [1, 0, 0])


def test_one_objective_layers_are_distinct_values_descending():
    x = np.array([3.0, 1.0, 3.0, 2.0, -1.0, 2.0])[:, None]
    np.testing.assert_array_equal(nondominated_layers(x), [0, 2, 0, 1, 3, 1])
    np.testing.assert_array_equal(nondominated_layers(x, min_count=3), [0, -1, 0, 1, -1, 1])
    np.testing.assert_array_equal(nondominated_layers(x, maximise=False), [3, 1, 3, 2, 0, 2])


def test_empty_input():
    assert nondominated_layers(np.zeros((0, 3)), min_count=5).shape == (0,)


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.int8,
        st.tuples(st.integers(1, 40), st.integers(1, 4)),
        elements=st.integers(-3, 3),
    ),
    st.one_of(st.none(), st.integers(1, 50)),
    st.one_of(st.none(), st.integers(1, 6)),
)
def test_property_small_integer_sets(X, min_count, max_layers):
    full = oracle_layers(X)
    got = nondominated_layers(X, max_layers=max_layers, min_count=min_count)
    np.testing.assert_array_equal(got, expected_cut(full, max_layers, min_count))


# --- the sample-prefilter path (n above the small-input cutoff), against moocore on the same array ------------


def check_against_moocore(X, max_layers=None, min_count=None, maximise=True):
    full = np.asarray(moocore.pareto_rank(X, maximise=maximise))
    got = nondominated_layers(X, max_layers=max_layers, min_count=min_count, maximise=maximise)
    np.testing.assert_array_equal(got, expected_cut(full, max_layers, min_count))
    return got


@pytest.mark.parametrize(
    "m, rho, min_count", [(3, 0.5, 500), (3, 0.0, 300), (3, -0.4, 800), (2, 0.3, 200), (2, -0.9, 300), (4, 0.5, 400)]
)
def test_prefilter_matches_moocore(m, rho, min_count):
    X = correlated(30_000, m, rho, seed=m)
    Y = X.copy()
    assert layers_mod._prefiltered_layers(Y, None, min_count) is not None  # the fast path is really exercised
    got = check_against_moocore(X, min_count=min_count)
    assert (got >= 0).sum() >= min_count


def test_prefilter_tie_heavy_and_duplicates():
    rng = np.random.default_rng(7)
    X = rng.integers(0, 25, size=(30_000, 3)).astype(float)
    X[:5000] = X[5000:10000]  # many exact duplicates of other rows
    assert layers_mod._prefiltered_layers(X, None, 300) is not None
    check_against_moocore(X, min_count=300)
    check_against_moocore(X, max_layers=3)


def test_prefilter_sorted_input_and_minimise():
    X = correlated(25_000, 3, 0.3, seed=11)
    X = X[np.argsort(X.sum(axis=1))]
    check_against_moocore(X, min_count=250)
    check_against_moocore(X, min_count=250, maximise=False)
    check_against_moocore(X, max_layers=4, min_count=10_000)


def test_prefilter_with_a_constant_objective():
    X = correlated(25_000, 3, 0.2, seed=12)
    X[:, 1] = 1.0
    check_against_moocore(X, min_count=400)


def test_large_min_count_falls_back_to_exact_peeling():
    X = correlated(60_000, 3, 0.0, seed=13)
    assert layers_mod._prefiltered_layers(X, None, 20_000) is None  # upper set would be most of the data
    check_against_moocore(X, min_count=20_000)


def test_one_objective_large():
    x = np.random.default_rng(0).integers(0, 1000, size=(50_000, 1)).astype(float)
    full = np.unique(-x[:, 0], return_inverse=True)[1]
    np.testing.assert_array_equal(nondominated_layers(x, min_count=120), expected_cut(full, None, 120))


def test_first_layers_pool():
    X = make("ties", 400, 3, seed=5)
    full = oracle_layers(X)
    pool, layer = first_layers_pool(X, min_count=50)
    expected = expected_cut(full, None, 50)
    np.testing.assert_array_equal(pool, np.flatnonzero(expected >= 0))
    np.testing.assert_array_equal(layer, expected[pool])
    assert len(pool) >= 50
    assert np.all(np.diff(pool) > 0)


@pytest.mark.parametrize(
    "points, kwargs, message",
    [
        ([[1.0, np.nan], [0.0, 1.0]], {}, r"points contain NaN in objective 1 \(row 0\)"),
        ([[1.0, 2.0], [np.inf, 1.0]], {}, r"points contain inf in objective 0 \(row 1\)"),
        ([1.0, 2.0, 3.0], {}, r"2-D array"),
        ([["a", "b"]], {}, r"numeric"),
        ([[1.0, 2.0]], {"min_count": 0}, r"min_count must be at least 1, got 0"),
        ([[1.0, 2.0]], {"max_layers": 2.5}, r"max_layers must be an integer"),
    ],
)
def test_bad_input(points, kwargs, message):
    with pytest.raises(ValueError, match=message):
        nondominated_layers(points, **kwargs)
