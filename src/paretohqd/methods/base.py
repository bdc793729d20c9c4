"""What a method is: the training units it declares, and the models it evaluates.

A method never runs anything itself. It declares units (``pipeline.Unit``: what each reads, writes and is keyed
by) on top of the shared ones the pipeline gives it (``pipeline.Shared``: the inputs, the merged scores, the
preference grid), and names the models to evaluate: each with its preference, how to load it, and how its prompts
are conditioned. The pipeline adds held-out generation and evaluation for those models and runs the whole plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..pipeline import Shared, Unit

ALL_COMMANDS = ("score", "select", "train", "generate", "evaluate", "run")


@dataclass
class EvaluatedModel:
    """One model a method serves on the held-out prompts.

    ``adapters``: the training units whose output folders make the model (none: the base model; several with
    ``mix``: their weighted combination). ``condition``: a picklable callable ``(prompts, inputs) -> prompts`` that
    rewrites the prompts the model sees, with ``condition_settings`` everything it depends on (part of the
    generation key) and ``inputs`` the further units whose outputs it reads (role -> unit)."""

    name: str
    weights: list[float] | None
    adapters: list[Unit] = field(default_factory=list)
    mix: list[float] | None = None
    condition: Any = None
    condition_settings: dict = field(default_factory=dict)
    inputs: dict[str, Unit] = field(default_factory=dict)


class Method:
    key: ClassVar[str]
    """The config's ``method:`` value."""
    name: ClassVar[str]
    """How reports name it."""
    commands: ClassVar[tuple[str, ...]] = tuple(c for c in ALL_COMMANDS if c != "select")
    """The stage commands it has."""

    def training_units(self, shared: Shared) -> list[Unit]:
        raise NotImplementedError

    def evaluated_models(self, shared: Shared, training: list[Unit]) -> list[EvaluatedModel]:
        raise NotImplementedError


def by_name(units: list[Unit], prefix: str) -> list[Unit]:
    """The units whose name starts with ``prefix``, in declaration order."""
    return [unit for unit in units if unit.name.startswith(prefix)]


def sample_frame(scores, rows=None):
    """The (id, prompt, response) training table of some scored samples."""
    part = scores if rows is None else scores.iloc[rows]
    return part[["id", "prompt", "response"]].reset_index(drop=True)
