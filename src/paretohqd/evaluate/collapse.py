"""Language-collapse detector (METHOD.md section 3 DEFAULT): a response is degenerate when, after cleaning, it has
fewer than ``min_tokens`` tokens, or one word n-gram occurs ``max_ngram_repeats`` times or more, or its distinct-2
ratio is below ``min_distinct2`` on a response of at least ``distinct_min_tokens`` tokens."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CollapseDetector:
    min_tokens: int = 5
    ngram: int = 3
    max_ngram_repeats: int = 3
    min_distinct2: float = 0.5
    distinct_min_tokens: int = 20

    def reasons(self, text: str) -> list[str]:
        """Why ``text`` is degenerate (empty list: it is not)."""
        tokens = text.lower().split()
        found = []
        if len(tokens) < self.min_tokens:
            found.append(f"fewer than {self.min_tokens} tokens")
        ngrams = Counter(zip(*(tokens[i:] for i in range(self.ngram))))
        if ngrams and max(ngrams.values()) >= self.max_ngram_repeats:
            found.append(f"a {self.ngram}-gram repeated {max(ngrams.values())} times")
        if len(tokens) >= self.distinct_min_tokens:
            bigrams = list(zip(tokens, tokens[1:]))
            if len(set(bigrams)) / len(bigrams) < self.min_distinct2:
                found.append(f"distinct-2 below {self.min_distinct2}")
        return found

    def is_degenerate(self, texts: list[str]) -> np.ndarray:
        # Per-response n-gram counting has no array form; responses are short (<= a few hundred tokens).
        return np.array([bool(self.reasons(text)) for text in texts], dtype=bool)

    def rate(self, texts: list[str]) -> float:
        return float(self.is_degenerate(texts).mean()) if texts else 0.0
