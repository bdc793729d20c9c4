"""A user-style reward function, imported by dotted path in tests."""


def response_length(prompts, responses):
    return [len(r) for r in responses]


def vowel_share(prompts, responses):
    """A cheap text objective that disagrees with brevity: the share of vowels among letters."""
    shares = []
    for text in responses:
        letters = [c for c in text.lower() if c.isalpha()]
        shares.append(sum(c in "aeiou" for c in letters) / len(letters) if letters else 0.0)
    return shares


def too_few_scores(prompts, responses):
    return [1.0]


# Hostile objectives for tests/test_hostile.py: each misbehaves in one way a user's reward function might.


def raises_error(prompts, responses):
    raise RuntimeError("reward server unreachable")


def returns_nan(prompts, responses):
    """NaN for the sample whose prompt is 'question 3' (id r3 in the tests' data)."""
    return [float("nan") if p == "question 3" else float(len(r)) for p, r in zip(prompts, responses)]


def returns_inf(prompts, responses):
    """+inf for the sample whose prompt is 'question 2' (id r2 in the tests' data)."""
    return [float("inf") if p == "question 2" else float(len(r)) for p, r in zip(prompts, responses)]


def returns_strings(prompts, responses):
    return ["high" for _ in responses]


def returns_none(prompts, responses):
    return None


def returns_scalar(prompts, responses):
    return 1.0


def returns_too_many(prompts, responses):
    return [1.0] * (len(responses) + 1)


def slow_length(prompts, responses):
    """Response length, slowly when PARETOHQD_TEST_SLOW is set: scoring runs long enough to be interrupted."""
    import os
    import time

    time.sleep(float(os.environ.get("PARETOHQD_TEST_SLOW", "0")))
    return [float(len(r)) for r in responses]
