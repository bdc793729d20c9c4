"""What every config section shares: finite floats, and its own checks in ``__post_init__``."""

from __future__ import annotations

import math
from dataclasses import fields


class SettingError(ValueError):
    """A bad value in one section; the message starts with the field name, and loading prefixes the section."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise SettingError(message)


class Section:
    """Every float setting must be finite; each section adds its own checks in ``check``."""

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise SettingError(f"{item.name} must be a finite number, not {value!r}")
            if isinstance(value, (list, tuple)) and any(isinstance(v, float) and not math.isfinite(v) for v in value):
                raise SettingError(f"{item.name} must hold finite numbers, not {value!r}")
        self.check()

    def check(self) -> None:
        pass
