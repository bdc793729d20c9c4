"""The run-time reward head and its file format: a Bradley-Terry head on frozen MiniLM sentence embeddings.

No reward model can be downloaded here, so the ``harmless`` and ``helpful`` objectives are small heads fitted on
HH-RLHF pairs (``paretohqd rewards fit``, see ``scripts/fit_reward_heads.py``). The reward of a (prompt, response) is

    r = u . x + v . tanh(W x + c)        (the tanh term only for kind "mlp")
    x = (phi(prompt, response) - x_mean) / x_scale
    score = (r - offset) / scale         (mean 0, std 1 over the fit responses)

with phi made of the response embedding, the response embedding times the embedding of the last human turn
(whether the reply is about what was asked), their cosine and the log lengths of the response. Fitting
(``heads.fit``) minimises -log sigmoid(r(chosen) - r(rejected)) plus L2, chooses the kind and the L2 strength by
cross-validation grouped by prompt inside the fit part, and reports accuracy on a held-out part whose prompts it
never saw.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...errors import UserError
from ...io import json_default, write_bytes
from ..embeddings import EMBEDDING_DIM, embed, last_human_turn

FORMAT = "paretohqd.preference_head/1"

# Blocks of phi, in order. "context" is the last human turn of the prompt (the whole prompt for non-dialogue data).
FEATURE_BLOCKS: dict[str, int] = {
    "response": EMBEDDING_DIM,
    "response*context": EMBEDDING_DIM,
    "cosine": 1,
    "log_words": 1,
    "log_chars": 1,
}
DEFAULT_FEATURES = tuple(FEATURE_BLOCKS)


def check_features(features: Sequence[str]) -> tuple[str, ...]:
    features = tuple(features)
    unknown = [f for f in features if f not in FEATURE_BLOCKS]
    if unknown or not features or len(set(features)) != len(features):
        raise ValueError(f"bad feature list {list(features)}: use distinct names from {', '.join(FEATURE_BLOCKS)}")
    return features


def word_counts(texts: Sequence[str]) -> np.ndarray:
    return pd.Series(list(texts), dtype=object).str.split().str.len().fillna(0).to_numpy(dtype=np.float64)


def char_counts(texts: Sequence[str]) -> np.ndarray:
    return pd.Series(list(texts), dtype=object).str.len().fillna(0).to_numpy(dtype=np.float64)


def feature_matrix(features: Sequence[str], response_emb: np.ndarray, context_emb: np.ndarray,
              responses: Sequence[str]) -> np.ndarray:
    """phi for n samples, (n, d) float64, from precomputed embeddings (so one fit embeds every text once)."""
    r = response_emb.astype(np.float64)
    h = context_emb.astype(np.float64)
    blocks = []
    for name in features:
        if name == "response":
            blocks.append(r)
        elif name == "response*context":
            blocks.append(r * h)
        elif name == "cosine":
            blocks.append(np.einsum("ij,ij->i", r, h)[:, None])  # unit vectors: the dot product is the cosine
        elif name == "log_words":
            blocks.append(np.log1p(word_counts(responses))[:, None])
        elif name == "log_chars":
            blocks.append(np.log1p(char_counts(responses))[:, None])
    return np.concatenate(blocks, axis=1)


def context_texts(prompts: Sequence[str]) -> list[str]:
    """What the response is compared with: the last human turn of each prompt."""
    return [last_human_turn(p) for p in prompts]


class PreferenceHead:
    """A fitted reward head: numpy weights, the feature spec, the output calibration and metadata."""

    def __init__(self, kind: str, features: Sequence[str], params: dict[str, np.ndarray], x_mean: np.ndarray,
                 x_scale: np.ndarray, offset: float = 0.0, scale: float = 1.0,
                 metadata: dict[str, Any] | None = None):
        if kind not in ("linear", "mlp"):
            raise ValueError(f"unknown head kind '{kind}' (use linear or mlp)")
        self.kind = kind
        self.features = check_features(features)
        self.params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
        self.x_mean = np.asarray(x_mean, dtype=np.float64)
        self.x_scale = np.asarray(x_scale, dtype=np.float64)
        self.offset = float(offset)
        self.scale = float(scale)
        self.metadata = dict(metadata or {})
        dim = sum(FEATURE_BLOCKS[f] for f in self.features)
        needed = ["u"] + (["W", "c", "v"] if kind == "mlp" else [])
        missing = [k for k in needed if k not in self.params]
        if missing:
            raise ValueError(f"{kind} head is missing parameter(s) {', '.join(missing)}")
        if self.x_mean.shape != (dim,) or self.x_scale.shape != (dim,) or self.params["u"].shape != (dim,):
            raise ValueError(f"head weights do not match its features ({dim} dimensions)")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"head scale must be positive (got {self.scale})")

    @property
    def dim(self) -> int:
        return int(self.x_mean.shape[0])

    def raw_from_features(self, phi: np.ndarray) -> np.ndarray:
        """Uncalibrated reward r for a (n, d) feature matrix; one matrix product per layer, no per-sample loop."""
        x = (phi - self.x_mean) / self.x_scale
        r = x @ self.params["u"]
        if self.kind == "mlp":
            r = r + np.tanh(x @ self.params["W"] + self.params["c"]) @ self.params["v"]
        return r

    def score_features(self, phi: np.ndarray) -> np.ndarray:
        return (self.raw_from_features(phi) - self.offset) / self.scale

    def score_embeddings(self, response_emb: np.ndarray, context_emb: np.ndarray,
                         responses: Sequence[str]) -> np.ndarray:
        return self.score_features(feature_matrix(self.features, response_emb, context_emb, responses))

    def score_texts(self, prompts: Sequence[str], responses: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Calibrated rewards (float64) for aligned lists of prompts and responses."""
        prompts, responses = list(prompts), list(responses)
        if len(prompts) != len(responses):
            raise ValueError(f"score_texts got {len(prompts)} prompts but {len(responses)} responses")
        if not prompts:
            return np.zeros(0, dtype=np.float64)
        response_emb = embed(responses, batch_size=batch_size)
        context_emb = embed(context_texts(prompts), batch_size=batch_size)
        return self.score_embeddings(response_emb, context_emb, responses)

    # ------------------------------------------------------------------------------------------- persistence

    def to_bytes(self) -> bytes:
        metadata = {**self.metadata, "format": FORMAT, "kind": self.kind, "features": list(self.features),
                    "offset": self.offset, "scale": self.scale}
        arrays = {"x_mean": self.x_mean, "x_scale": self.x_scale,
                  # A unicode array (not a pickled object) keeps the file loadable with allow_pickle=False.
                  "metadata": np.array(json.dumps(metadata, sort_keys=True, default=json_default)),
                  **{f"param_{k}": v for k, v in self.params.items()}}
        buffer = io.BytesIO()
        # np.savez stamps the current time into the zip; a fixed stamp makes equal heads byte-identical, so the
        # head's sha256 (which keys score caches) changes only when the head does.
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for key in sorted(arrays):
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                with archive.open(info, "w") as handle:
                    np.lib.format.write_array(handle, np.asarray(arrays[key]), allow_pickle=False)
        return buffer.getvalue()

    def save(self, path: str | Path) -> None:
        path = Path(path)
        if path.is_dir():
            raise UserError(f"head output '{path}' is a folder; give a file name such as {path / 'head.npz'}")
        write_bytes(path, self.to_bytes())  # atomic: a crash never leaves half a head file

    @classmethod
    def load(cls, path: str | Path) -> PreferenceHead:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"preference head file '{path}' does not exist")
        try:
            with np.load(path, allow_pickle=False) as data:
                metadata = json.loads(str(data["metadata"]))
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"'{path}' is not a preference head file: {exc}") from None
        if metadata.get("format") != FORMAT:
            raise UserError(f"'{path}' has head format {metadata.get('format')!r}; this version reads {FORMAT!r}")
        params = {k[len("param_"):]: v for k, v in arrays.items() if k.startswith("param_")}
        try:
            return cls(kind=metadata["kind"], features=metadata["features"], params=params,
                       x_mean=arrays["x_mean"], x_scale=arrays["x_scale"], offset=metadata["offset"],
                       scale=metadata["scale"], metadata={k: v for k, v in metadata.items()
                                                          if k not in ("format", "kind", "features", "offset",
                                                                       "scale")})
        except (KeyError, ValueError) as exc:
            raise UserError(f"preference head file '{path}' is incomplete or inconsistent: {exc}") from None

    def __repr__(self) -> str:
        return f"PreferenceHead(kind={self.kind!r}, features={list(self.features)}, dim={self.dim})"
