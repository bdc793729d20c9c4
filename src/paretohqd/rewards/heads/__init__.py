"""Offline reward heads: the run-time model and its file format (``model``) and its objective (``objective``),
which scoring imports; fitting (``fit``) is imported only by ``paretohqd rewards fit``."""

from .model import FORMAT, PreferenceHead
from .objective import SHIPPED_HEADS, PreferenceHeadObjective, resolve_head_path

__all__ = ["FORMAT", "SHIPPED_HEADS", "PreferenceHead", "PreferenceHeadObjective", "resolve_head_path"]
