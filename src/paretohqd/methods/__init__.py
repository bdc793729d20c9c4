"""Methods: each declares its training units and the models it evaluates (``base.Method``); the pipeline runs
them through the shared stages."""

from __future__ import annotations

from ..errors import UserError
from .base import EvaluatedModel, Method
from .modpo import MODPO
from .morlhf import MORLHF
from .paretohqd import ParetoHqD
from .ric import RiC
from .sft import SFT
from .soups import RewardedSoups

METHODS: dict[str, Method] = {m.key: m for m in (ParetoHqD(), RiC(), SFT(), RewardedSoups(), MORLHF(), MODPO())}


def get_method(key: str) -> Method:
    if key not in METHODS:
        raise UserError(f"unknown method '{key}' (methods: {', '.join(METHODS)})")
    return METHODS[key]


__all__ = ["METHODS", "MODPO", "SFT", "EvaluatedModel", "Method", "ParetoHqD", "RewardedSoups", "RiC", "get_method"]
