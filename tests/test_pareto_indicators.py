"""Hypervolume (raw and union-normalised, docs/concepts/hypervolume.md) and non-dominance against small exact
oracles."""

from itertools import combinations

import numpy as np
import pytest

from paretohqd.pareto import hypervolume, is_nondominated, normalised_hypervolume


def staircase_area(points, ref):
    """2-D hypervolume (maximising): sweep x downwards, the covered height is the best y seen so far."""
    pts = [p for p in points if p[0] > ref[0] and p[1] > ref[1]]
    pts.sort(key=lambda p: -p[0])
    area, best_y = 0.0, ref[1]
    for i, (x, y) in enumerate(pts):
        next_x = pts[i + 1][0] if i + 1 < len(pts) else ref[0]
        best_y = max(best_y, y)
        area += (x - next_x) * (best_y - ref[1])
    return area


def inclusion_exclusion(points, ref):
    """Volume of the union of boxes [ref, p] (maximising), exact for a handful of points."""
    pts = [np.asarray(p) for p in points if np.all(np.asarray(p) > ref)]
    total = 0.0
    for size in range(1, len(pts) + 1):
        for subset in combinations(pts, size):
            corner = np.min(subset, axis=0)
            total += (-1) ** (size + 1) * np.prod(corner - ref)
    return total


def test_hypervolume_2d_against_staircase():
    rng = np.random.default_rng(0)
    for _ in range(20):
        P = rng.uniform(0, 1, size=(rng.integers(1, 30), 2))
        P[rng.integers(0, len(P))] = P[0]  # a duplicate
        ref = rng.uniform(-0.2, 0.3, size=2)
        assert hypervolume(P, ref) == pytest.approx(staircase_area(P.tolist(), ref), rel=1e-12, abs=1e-15)


def test_hypervolume_3d_against_inclusion_exclusion():
    rng = np.random.default_rng(1)
    for _ in range(10):
        P = rng.integers(0, 5, size=(7, 3)).astype(float)  # ties on purpose
        ref = np.array([-1.0, 0.5, 0.0])
        assert hypervolume(P, ref) == pytest.approx(inclusion_exclusion(P, ref), rel=1e-12, abs=1e-12)


def test_points_not_strictly_better_than_reference_add_nothing():
    assert hypervolume([[1.0, 1.0], [2.0, 0.0]], [0.0, 0.0]) == pytest.approx(1.0)
    assert hypervolume([[0.0, 5.0]], [0.0, 0.0]) == 0.0
    assert hypervolume(np.zeros((0, 2)), [0.0, 0.0]) == 0.0
    assert hypervolume([[1.0, 2.0]], 0.0) == pytest.approx(2.0)  # scalar reference for every objective


def test_minimise_matches_negated_maximise():
    P = np.random.default_rng(2).uniform(0, 1, size=(20, 3))
    ref = np.array([1.1, 1.2, 1.0])
    assert hypervolume(P, ref, maximise=False) == pytest.approx(hypervolume(-P, -ref))


def test_hypervolume_bad_input():
    with pytest.raises(ValueError, match="reference point has 3 values but the points have 2 objectives"):
        hypervolume([[1.0, 1.0]], [0, 0, 0])
    with pytest.raises(ValueError, match=r"points contain NaN in objective 0 \(row 1\)"):
        hypervolume([[1.0, 1.0], [np.nan, 1.0]], [0, 0])


def test_normalised_hypervolume_default_reference():
    sets = {"a": np.array([[10.0, 100.0], [20.0, 50.0]]), "b": np.array([[15.0, 80.0], [0.0, 120.0]])}
    out = normalised_hypervolume(sets)
    low, high = np.array([0.0, 50.0]), np.array([20.0, 120.0])
    assert out["normalisation"]["low"] == low.tolist() and out["normalisation"]["high"] == high.tolist()
    assert out["reference_point"]["raw"] == low.tolist()
    assert out["reference_point"]["normalised"] == [0.0, 0.0]
    for name, P in sets.items():
        z = (P - low) / (high - low)
        assert out["hypervolume"][name] == pytest.approx(staircase_area(z.tolist(), [0.0, 0.0]))
    assert out["maximise"] is True


def test_normalised_hypervolume_is_scale_free_and_accepts_a_reference():
    rng = np.random.default_rng(3)
    sets = {"x": rng.uniform(0, 1, (8, 3)), "y": rng.uniform(0, 1, (5, 3))}
    scaled = {k: v * [10.0, 0.1, 3.0] + [5.0, -1.0, 0.0] for k, v in sets.items()}
    a, b = normalised_hypervolume(sets), normalised_hypervolume(scaled)
    for name in sets:
        assert a["hypervolume"][name] == pytest.approx(b["hypervolume"][name])
    ref = normalised_hypervolume(sets, reference=[-1.0, -1.0, -1.0])
    low, high = np.array(ref["normalisation"]["low"]), np.array(ref["normalisation"]["high"])
    np.testing.assert_allclose(ref["reference_point"]["normalised"], (-1.0 - low) / (high - low))
    assert ref["hypervolume"]["x"] > a["hypervolume"]["x"]


def test_normalised_hypervolume_errors():
    with pytest.raises(ValueError, match="point set 'b' has 3 objectives but 'a' has 2"):
        normalised_hypervolume({"a": [[1.0, 2.0]], "b": [[1.0, 2.0, 3.0]]})
    with pytest.raises(ValueError, match="non-empty mapping"):
        normalised_hypervolume({})


def test_is_nondominated_keeps_duplicates_by_default():
    P = [[1, 1], [0, 1], [1, 0], [1, 0]]
    np.testing.assert_array_equal(is_nondominated(P, maximise=False), [False, True, True, True])
    np.testing.assert_array_equal(is_nondominated(P, maximise=False, keep_weakly=False), [False, True, True, False])
    np.testing.assert_array_equal(is_nondominated(P), [True, False, False, False])
