"""Language-collapse detector (docs/concepts/hypervolume.md; thresholds in ``config.CollapseConfig``): a response is
degenerate when, after cleaning, it has fewer than ``min_tokens`` tokens, or one word n-gram occurs
``max_ngram_repeats`` times or more, or its distinct-2 ratio is below ``min_distinct2`` on a response of at least
``distinct_min_tokens`` tokens."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..config import CollapseConfig


@dataclass(frozen=True)
class CollapseDetector:
    thresholds: CollapseConfig = field(default_factory=CollapseConfig)

    def reasons(self, text: str) -> list[str]:
        """Why ``text`` is degenerate (empty list: it is not)."""
        t = self.thresholds
        tokens = text.lower().split()
        found = []
        if len(tokens) < t.min_tokens:
            found.append(f"fewer than {t.min_tokens} tokens")
        ngrams = Counter(zip(*(tokens[i:] for i in range(t.ngram))))
        if ngrams and max(ngrams.values()) >= t.max_ngram_repeats:
            found.append(f"a {t.ngram}-gram repeated {max(ngrams.values())} times")
        if len(tokens) >= t.distinct_min_tokens:
            bigrams = list(itertools.pairwise(tokens))
            if len(set(bigrams)) / len(bigrams) < t.min_distinct2:
                found.append(f"distinct-2 below {t.min_distinct2}")
        return found

    def is_degenerate(self, texts: list[str]) -> np.ndarray:
        # Per-response n-gram counting has no array form; responses are short (<= a few hundred tokens).
        return np.array([bool(self.reasons(text)) for text in texts], dtype=bool)

    def rate(self, texts: list[str]) -> float:
        return float(self.is_degenerate(texts).mean()) if texts else 0.0
