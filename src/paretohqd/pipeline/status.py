"""Where a run stands, without running anything: every unit of its plan with its key and whether it is done, to
run, stale (finished under other settings or inputs), reused (another unit's outputs have its key), running now, or
interrupted (``paretohqd plan CONFIG``, ``paretohqd status RUN``)."""

from __future__ import annotations

import time

from .plan import Plan
from .runner import HEARTBEAT_FOLDER, HEARTBEAT_SECONDS, Heartbeat, Runner

STATES = ("done", "reused", "running", "interrupted", "failed", "stale", "to run")
BEATS_OF_SILENCE = 10
"""A running unit whose heartbeat file is older than this many beats belongs to a process that is gone."""


def unit_states(plan: Plan) -> list[dict]:
    """One row per unit of ``plan``, in its declaration order: unit, stage, kind, key, state, recorded seconds."""
    runner = Runner(plan.run)
    heartbeat = Heartbeat(plan.run.path / HEARTBEAT_FOLDER, active=False)
    rows = []
    for unit in plan.units:
        entry = runner.manifest["units"].get(unit.name, {})
        rows.append({"unit": unit.name, "stage": unit.stage, "kind": unit.kind, "key": unit.key,
                     "state": _state(runner, heartbeat, unit, entry),
                     "wall_seconds": entry.get("wall_seconds") if entry.get("status") == "done" else None})
    return rows


def _state(runner: Runner, heartbeat: Heartbeat, unit, entry: dict) -> str:
    if runner.is_done(unit):
        return "done"
    status = entry.get("status")
    if status == "running" and entry.get("key") == unit.key:
        beat = heartbeat.path(unit.name)
        alive = beat.exists() and time.time() - beat.stat().st_mtime < BEATS_OF_SILENCE * HEARTBEAT_SECONDS
        return "running" if alive else "interrupted"
    if not unit.content_addressed and runner.donor(unit) is not None:
        return "reused"
    if status == "failed" and entry.get("key") == unit.key:
        return "failed"
    return "stale" if status == "done" else "to run"


def state_counts(rows: list[dict]) -> dict[str, int]:
    return {state: sum(row["state"] == state for row in rows) for state in STATES
            if any(row["state"] == state for row in rows)}
