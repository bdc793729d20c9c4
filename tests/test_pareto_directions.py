"""Preference rays, distances and grids (docs/concepts/preferences.md, selection.md)."""

from math import comb

import numpy as np
import pytest

from paretohqd.pareto import (
    das_dennis,
    linear_grid,
    preference_direction,
    preference_grid,
    ray_distance,
    representative_preferences,
    ric_grid_3,
    validate_preferences,
)


def test_directions_are_unit_and_keep_gap_ratios():
    W = np.vstack([das_dennis(5, 3), [[0.7, 0.2, 0.1]]])
    D = preference_direction(W)
    np.testing.assert_allclose(np.linalg.norm(D, axis=1), 1.0)
    for w, d in zip(W, D):
        z = 1.0 + 0.37 * d  # a point on the ray
        gaps = 1.0 - z
        for i in range(3):
            for j in range(3):
                np.testing.assert_allclose(gaps[i] * (1 - w[j]), gaps[j] * (1 - w[i]), atol=1e-12)


def test_balanced_is_diagonal_and_one_hot_stays_at_ideal():
    d = preference_direction([1, 1, 1])[0]
    np.testing.assert_allclose(d, -np.ones(3) / np.sqrt(3))
    d = preference_direction([0, 1, 0])[0]
    assert d[1] == 0.0 and d[0] < 0 and d[2] < 0


def test_weights_are_normalised_before_the_direction():
    np.testing.assert_allclose(preference_direction([2, 1]), preference_direction([2 / 3, 1 / 3]))


def test_one_objective_direction_is_minus_one():
    np.testing.assert_array_equal(preference_direction([[1.0]]), [[-1.0]])
    dist = ray_distance(np.array([[1.0], [0.2]]), preference_direction([[3.0]]))
    # Every point lies on the only ray: the distance is the shortfall from the best, so the best rank first.
    np.testing.assert_allclose(dist[:, 0], [0.0, 0.8])


def brute_perpendicular(z, d):
    """Distance from each point to the ray {1 + t d : t >= 0}, one point at a time with plain arithmetic."""
    out = np.empty(len(z))
    for i, point in enumerate(z):
        v = point - 1.0
        t = max(sum(a * b for a, b in zip(v, d)), 0.0)
        out[i] = np.sqrt(sum((a - t * b) ** 2 for a, b in zip(v, d)))
    return out


def test_perpendicular_distance_against_brute_force():
    rng = np.random.default_rng(0)
    z = rng.uniform(-0.2, 1.2, size=(200, 3))
    W = das_dennis(3, 3)
    D = preference_direction(W)
    dist = ray_distance(z, D)
    assert dist.shape == (200, len(W))
    for p, d in enumerate(D):
        np.testing.assert_allclose(dist[:, p], brute_perpendicular(z, d), atol=1e-12)
        # It is the minimum over the ray: no sampled ray point is closer.
        ts = np.linspace(0, 3, 301)
        ray = 1.0 + ts[:, None] * d
        sampled = np.linalg.norm(z[:, None, :] - ray[None, :, :], axis=2).min(axis=1)
        assert np.all(dist[:, p] <= sampled + 1e-12)


def test_points_on_the_ray_have_zero_distance_and_angle():
    d = preference_direction([[0.3, 0.7]])
    z = 1.0 + np.array([[0.0], [0.5], [1.2]]) * d
    np.testing.assert_allclose(ray_distance(z, d), 0.0, atol=1e-12)
    np.testing.assert_allclose(ray_distance(z, d, metric="angle"), 0.0, atol=1e-7)


def test_angle_metric_matches_arccos():
    rng = np.random.default_rng(1)
    z = rng.uniform(0, 0.9, size=(50, 2))
    d = preference_direction(linear_grid(5))
    v = z - 1.0
    expected = np.arccos(np.clip((v @ d.T) / np.linalg.norm(v, axis=1, keepdims=True), -1, 1))
    np.testing.assert_allclose(ray_distance(z, d, metric="angle"), expected, atol=1e-7)


def test_ray_distance_bad_input():
    with pytest.raises(ValueError, match="metric must be one of perpendicular, angle, got 'cosine'"):
        ray_distance(np.zeros((2, 2)), [[-1.0, 0.0]], metric="cosine")
    with pytest.raises(ValueError, match="direction 0 has zero length"):
        ray_distance(np.zeros((2, 2)), [[0.0, 0.0]])
    with pytest.raises(ValueError, match="points have 2 objectives"):
        ray_distance(np.zeros((2, 2)), [[-1.0, 0.0, 0.0]])


@pytest.mark.parametrize("p, m", [(1, 2), (10, 2), (4, 3), (12, 3), (3, 4), (2, 6)])
def test_das_dennis_counts_and_rows(p, m):
    W = das_dennis(p, m)
    assert W.shape == (comb(p + m - 1, m - 1), m)
    np.testing.assert_allclose(W.sum(axis=1), 1.0)
    np.testing.assert_allclose(W * p, np.round(W * p), atol=1e-12)  # multiples of 1/p
    assert len(np.unique(W, axis=0)) == len(W)
    assert W.min() >= 0


def test_das_dennis_order_is_pymoo_order():
    expected = [[0, 0, 1], [0, 0.5, 0.5], [0, 1, 0], [0.5, 0, 0.5], [0.5, 0.5, 0], [1, 0, 0]]
    np.testing.assert_array_equal(das_dennis(2, 3), expected)
    np.testing.assert_array_equal(das_dennis(10, 2), linear_grid(11))


def test_linear_grid():
    W = linear_grid()
    assert W.shape == (11, 2)
    np.testing.assert_allclose(W[:, 0], np.arange(11) / 10)
    np.testing.assert_allclose(W.sum(axis=1), 1.0)


def test_ric_grid():
    W = ric_grid_3()
    assert W.shape == (13, 3)
    np.testing.assert_allclose(W.sum(axis=1), 1.0)
    np.testing.assert_array_equal(W[0], [0, 0, 1])
    np.testing.assert_array_equal(W[-1], [1, 0, 0])
    np.testing.assert_allclose(W[7], [1 / 3] * 3)


def test_preference_grid_specs():
    assert preference_grid("linear", 2).shape == (11, 2)
    assert preference_grid("linear", 2, n_partitions=4).shape == (5, 2)
    np.testing.assert_array_equal(preference_grid("ric", 3), ric_grid_3())
    assert preference_grid("das-dennis", 3).shape == (15, 3)
    assert preference_grid("das_dennis", 3, n_partitions=12).shape == (91, 3)
    np.testing.assert_allclose(preference_grid([[2, 1], [0, 5]], 2), [[2 / 3, 1 / 3], [0, 1]])


@pytest.mark.parametrize(
    "spec, m, message",
    [
        ("linear", 3, "the 'linear' preference grid is for 2 objectives, but there are 3"),
        ("ric", 2, "the 'ric' preference grid is for 3 objectives, but there are 2"),
        ("zigzag", 2, "unknown preference grid 'zigzag'"),
    ],
)
def test_preference_grid_errors(spec, m, message):
    with pytest.raises(ValueError, match=message):
        preference_grid(spec, m)


def test_validate_preferences_normalises_and_accepts_one_vector():
    np.testing.assert_allclose(validate_preferences([2, 1], 2), [[2 / 3, 1 / 3]])
    np.testing.assert_allclose(validate_preferences(np.array([[1, 1, 2]]), 3), [[0.25, 0.25, 0.5]])


EXTREME_WEIGHTS = [
    [1.7e308, 1.7e307],  # the sum overflows: (0.909, 0.091), not (0, 0)
    [1.7976931348623157e308] * 3,  # the largest double, three times
    [1e308, 1e308, 1e-300],
    [1e-300, 3e-300],  # tiny, but a sum of them is exact
    [5e-324, 1e-323],  # subnormal
    [5e-324, 0.0, 0.0],
    [1e308, 1e-300],  # the exact 1e-608 is no double: it rounds to 0
    [1e-300, 1e300, 1.0],
    [0.3, 0.7],
    [1.0, 2.0, 3.0, 4.0],
]


@pytest.mark.parametrize("weights", EXTREME_WEIGHTS, ids=lambda w: ",".join(f"{x:.3g}" for x in w))
def test_weights_are_scale_free_against_exact_fractions(weights):
    """Every weight within 2 ulps of the exact w_i / sum(w), computed with fractions (no overflow, no underflow)."""
    from fractions import Fraction

    exact_sum = sum(Fraction(w) for w in weights)
    exact = np.array([float(Fraction(w) / exact_sum) for w in weights])
    got = validate_preferences([weights], len(weights))[0]
    assert np.all(np.isfinite(got)) and got.sum() == pytest.approx(1.0, abs=1e-15)
    assert np.all(np.abs(got - exact) <= 2 * np.spacing(exact)), (got, exact)
    # The same preference at any other scale is the same preference.
    for scale in (1e-200, 1e200):
        with np.errstate(over="ignore", under="ignore"):
            scaled = np.asarray(weights) * scale
        if np.all(np.isfinite(scaled)) and np.all((scaled > 0) == (np.asarray(weights) > 0)):
            np.testing.assert_allclose(validate_preferences([scaled], len(weights))[0], exact, rtol=1e-12)


@pytest.mark.parametrize(
    "weights, m, message",
    [
        ([[1e308, np.inf]], 2, "preference 0 has a non-finite weight inf"),
        ([[1e-320, -1e-320]], 2, "preference 0 has a negative weight -9.99989e-321"),
        ([[0.0, 0.0, 0.0]], 3, "preference 0 is all zeros"),
        ([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5]], 3, "preference 3 has 2 weights but there are 3 objectives"),
        ([[0, 0], [1, 1]], 2, "preference 0 is all zeros"),
        ([[1, 0], [0, 1], [1.1, -0.1]], 2, "preference 2 has a negative weight -0.1"),
        ([[1, np.nan]], 2, "preference 0 has a non-finite weight nan"),
        ([[1, "x"]], 2, "preference 0 is not a list of numbers"),
        ([], 2, "no preferences given"),
        ("ric", 3, "preferences must be weight vectors, got the string 'ric'"),
    ],
)
def test_validate_preferences_errors(weights, m, message):
    with pytest.raises(ValueError, match=message):
        validate_preferences(weights, m)


def test_representative_preferences():
    np.testing.assert_allclose(
        representative_preferences(3), [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1 / 3, 1 / 3, 1 / 3]]
    )
    np.testing.assert_array_equal(representative_preferences(1), [[1.0]])
