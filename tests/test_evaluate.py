import numpy as np

from paretohqd.evaluate.collapse import CollapseDetector
from paretohqd.evaluate.metrics import front_hypervolume
from paretohqd.policy import clean_response


def test_collapse_detector_defaults():
    detector = CollapseDetector()
    healthy = "You can fix a squeaky hinge with a few drops of oil on the pin."
    assert not detector.reasons(healthy)
    assert detector.reasons("Sure thing.") == ["fewer than 5 tokens"]
    assert "a 3-gram repeated 3 times" in detector.reasons("I am here. I am here. I am here. Okay then.")
    looping = " ".join(["very good"] * 15)
    assert any("distinct-2" in reason for reason in detector.reasons(looping))
    assert detector.rate([healthy, "No.", healthy, healthy]) == 0.25


def test_clean_response_cuts_at_the_next_turn():
    assert clean_response(" Sure, here it is.\n\nHuman: and more?\nAssistant: yes") == "Sure, here it is."
    assert clean_response("Fine.<|im_end|>junk") == "Fine."
    assert clean_response("Assistant: hello") == ""


def staircase_area(points, reference):
    """Brute-force 2-D hypervolume (maximising): sweep the points by the first objective."""
    kept = points[np.all(points > reference, axis=1)]
    area, best_y = 0.0, reference[1]
    for x, y in sorted(kept.tolist(), key=lambda p: -p[0]):
        if y > best_y:
            area += (x - reference[0]) * (y - best_y)
            best_y = y
    return area


def test_front_hypervolume_records_reference_and_beats_base():
    aligned = np.array([[1.0, 4.0], [2.0, 3.0], [3.0, 1.5]])
    base = np.array([0.5, 1.0])
    result = front_hypervolume(aligned, base)
    low, high = np.array(result["normalisation"]["low"]), np.array(result["normalisation"]["high"])
    np.testing.assert_allclose(low, [0.5, 1.0])
    np.testing.assert_allclose(high, [3.0, 4.0])
    assert result["reference_point"]["raw"] == [0.5, 1.0]
    z = (aligned - low) / (high - low)
    np.testing.assert_allclose(result["hypervolume"], staircase_area(z, np.zeros(2)))
    assert result["base_hypervolume"] == 0.0  # the base is the worst corner here
    np.testing.assert_allclose(result["hypervolume_vs_base"], staircase_area(z, (base - low) / (high - low)))
