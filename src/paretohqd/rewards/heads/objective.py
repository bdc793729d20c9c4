"""The Objective protocol over a saved reward head: what scoring imports (no fitting code)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..base import as_scores
from .model import PreferenceHead

ASSETS = Path(__file__).resolve().parents[2] / "assets"
SHIPPED_HEADS: dict[str, Path] = {
    "harmless": ASSETS / "harmless_head.npz",
    "helpful": ASSETS / "helpful_head.npz",
}


def resolve_head_path(head: str | Path) -> Path:
    """A head file path, or the name of a shipped head ('harmless', 'helpful')."""
    if isinstance(head, str) and head in SHIPPED_HEADS:
        return SHIPPED_HEADS[head]
    return Path(head)


class PreferenceHeadObjective:
    """The Objective protocol over a saved :class:`PreferenceHead` (the file is read once, at construction)."""

    def __init__(self, name: str, head_path: str | Path, batch_size: int = 64):
        if batch_size < 1:
            raise ValueError(f"objective '{name}': batch_size must be at least 1 (got {batch_size})")
        self.name = name
        self.head_path = resolve_head_path(head_path)
        self.batch_size = int(batch_size)
        self.head = PreferenceHead.load(self.head_path)

    def score(self, batch: pd.DataFrame) -> np.ndarray:
        missing = [c for c in ("prompt", "response") if c not in batch.columns]
        if missing:
            raise ValueError(f"objective '{self.name}' needs column(s) {', '.join(missing)} in the batch "
                             f"(got {', '.join(map(str, batch.columns)) or 'none'})")
        scores = self.head.score_texts(batch["prompt"].astype(str).tolist(), batch["response"].astype(str).tolist(),
                                       batch_size=self.batch_size)
        return as_scores(scores, len(batch), self.name)

    def __repr__(self) -> str:
        return f"PreferenceHeadObjective(name={self.name!r}, head_path='{self.head_path}')"
