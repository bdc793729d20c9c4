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
