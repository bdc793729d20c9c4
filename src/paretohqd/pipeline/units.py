"""A unit of work: what it reads, what it writes, and the key that decides whether it must run.

A unit names its upstream units (whose outputs it reads), exactly the settings that can change its result, the
content fingerprint of any data it reads from outside the run, and its outputs. Its key is a digest of those
and nothing else:

    key = digest(kind, settings, data fingerprint, {role: upstream key})

so a unit reruns exactly when something that determines its result changed, wherever and whenever it runs.
Settings that cannot change a result (progress bars, logging, batch sizes of deterministic scoring, devices, cache
paths) go in ``options``: the action sees them, the key does not. The action sees only its settings and options,
never the whole run config, so it cannot depend on a setting its key leaves out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .. import io


@dataclass(eq=False)
class Unit:
    name: str
    """Unique in a plan, and its entry in the manifest: ``train/stage1/pref_00``."""
    kind: str
    """What work it does (part of the key): two units of one kind with equal inputs produce equal outputs."""
    stage: str
    """The group its wall seconds are counted under (``score``, ``select``, ``train_stage1``, ...)."""
    command: str
    """The stage command that targets it: score, select, train, generate or evaluate."""
    action: Callable[[UnitContext], None]
    outputs: tuple[str, ...]
    """Paths relative to the run directory (or absolute, for a shared cache); ``{key}`` is replaced by the key."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    upstream: Mapping[str, Unit] = field(default_factory=dict)
    after: Mapping[str, Unit] = field(default_factory=dict)
    """Units whose outputs it reads without them defining its result (a self-check, the shards it merges): role
    -> unit, like ``upstream``, but left out of the key."""
    data: str = ""
    content_addressed: bool = False
    """Its outputs are named by its key, so existing outputs mean it is done (caches shared by several runs)."""
    check: Callable[[], None] | None = None
    """Validation to run before any unit of an execution starts (fail fast, before hours of work)."""
    group: str = ""
    """Units of one non-empty group that are ready at the same time run as one call of ``group_action`` (one
    vLLM engine answers every adapter's prompts at once); each keeps its own key, outputs and manifest entry."""
    group_action: Callable[[list[UnitContext]], None] | None = None

    @cached_property
    def key(self) -> str:
        return io.digest({"kind": self.kind, "settings": self.settings, "data": self.data,
                          "upstream": {role: unit.key for role, unit in sorted(self.upstream.items())}})

    @cached_property
    def output_paths(self) -> tuple[str, ...]:
        return tuple(path.replace("{key}", self.key) for path in self.outputs)

    @property
    def dependencies(self) -> list[Unit]:
        return [*self.upstream.values(), *self.after.values()]

    def __repr__(self) -> str:
        return f"Unit({self.name!r}, key={self.key})"


class UnitLog:
    """A unit's log: each line goes on to ``echo`` (the console) and is appended, as it is said, to the unit's file
    (``RUN/logs/<unit>.log``), so that a unit killed outright leaves what it said. Nothing reads the file back: no
    key and no "done" decision depends on it."""

    def __init__(self, path: Path, echo: Callable[[str], None] = print):
        self.path = Path(path)
        self.echo = echo

    def __call__(self, message: str) -> None:
        self.echo(message)
        self.record(message)

    def record(self, message: str) -> None:
        """``message`` in the file only (what the runner notes about the unit: its start, end, failure)."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write("".join(f"{stamp} {line}\n" for line in str(message).splitlines() or [""]))
        except OSError:  # a log that cannot be written is no reason to lose the unit's work
            pass

    def echoing(self, echo: Callable[[str], None]) -> UnitLog:
        """The same file, another console (a Ray worker prints where the driver forwards it)."""
        return UnitLog(self.path, echo)


def _alone(value: Any) -> list:
    """``gather`` of a unit that one process runs: its own value is everyone's."""
    return [value]


@dataclass
class UnitContext:
    """What an action is given: its settings and options, its upstream outputs by role, its output paths."""

    name: str
    settings: Mapping[str, Any]
    options: Mapping[str, Any]
    inputs: Mapping[str, list[Path]]
    outputs: list[Path]
    log: Callable[[str], None] = print
    key: str | None = None
    """The unit's key: what a training unit's checkpoints are kept under, so that only an attempt of the same
    unit resumes from them."""
    rank: int = 0
    """Which of the ``world_size`` processes running this unit this one is (training, score shards and generation
    run on every process of a multi-process launch): each does its share of the work, only rank 0 writes."""
    world_size: int = 1
    """How many processes run this unit together (1 for a unit that one process runs, even inside a launch)."""
    gather: Callable[[Any], list] = field(default=_alone, repr=False)
    """Every process's ``value``, in rank order, on every process (all of them must call it, the same number of
    times): how the shares come back together."""

    def input(self, role: str, index: int = 0) -> Path:
        return self.inputs[role][index]

    @property
    def output(self) -> Path:
        return self.outputs[0]
