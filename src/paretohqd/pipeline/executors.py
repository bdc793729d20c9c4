"""Executors run the units an execution needs, in dependency order. ``LocalExecutor``: in this process, one unit
after another (the default, and what a single GPU or a CPU wants)."""

from __future__ import annotations

import time
from typing import Callable, Sequence

from .units import Unit, UnitContext


class LocalExecutor:
    def run(self, units: Sequence[Unit], context_of: Callable[[Unit], UnitContext],
            start: Callable[[Unit], bool], finish: Callable[[Unit, float, BaseException | None], None]) -> None:
        """``start(unit)`` returns False when the unit no longer needs to run (an earlier unit of this execution
        produced its key); ``finish`` records the outcome, and the first failure stops the execution."""
        for unit in units:
            if not start(unit):
                continue
            began = time.perf_counter()
            try:
                unit.action(context_of(unit))
            except BaseException as exc:
                finish(unit, time.perf_counter() - began, exc)
                raise
            finish(unit, time.perf_counter() - began, None)
