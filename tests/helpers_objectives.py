"""A user-style reward function, imported by dotted path in tests."""


def response_length(prompts, responses):
    return [len(r) for r in responses]
