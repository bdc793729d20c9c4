"""What a method is: the training units it declares, and the models it evaluates.

A method never runs anything itself. It declares units (``pipeline.Unit``: what each reads, writes and is keyed
by) on top of the shared ones the pipeline gives it (``pipeline.Shared``: the inputs, the merged scores, the
preference grid), and names the models to evaluate: each with its preference, how to load it, and how its prompts
are conditioned. The pipeline adds held-out generation and evaluation for those models and runs the whole plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from ..data import TRUNCATED
from ..errors import UserError
from ..pareto.interpolation import enclosing_mix
from ..pipeline import Shared, Unit
from ..tables import format_vector

ALL_COMMANDS = ("score", "select", "train", "generate", "evaluate", "run")
SERVE_MODES = ("nearest", "interpolate")


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
    made_from: list[dict] = field(default_factory=list)
    """For a preference served beyond the trained ones: ``{"model", "weights", "weight"}`` of each trained model
    it is made of (``weight``: its share of the mix)."""
    earlier_stage_of: str | None = None
    """For an earlier stage of an evaluated model (ParetoHqD's stage-1 model of a preference): that model's name.
    Evaluated on the same prompts beside it and kept off the front, so that what the later stage adds is a
    paired difference per preference, at no training cost."""


class Method:
    key: ClassVar[str]
    """The config's ``method:`` value."""
    name: ClassVar[str]
    """How reports name it."""
    commands: ClassVar[tuple[str, ...]] = tuple(c for c in ALL_COMMANDS if c != "select")
    """The stage commands it has."""
    serve_modes: ClassVar[tuple[str, ...]] = SERVE_MODES
    """How it serves a preference beyond its trained ones (:meth:`served_model`); empty for a method that serves
    every preference by its own rule (one conditioned model, a soup, one model for all)."""

    def training_units(self, shared: Shared) -> list[Unit]:
        raise NotImplementedError

    def evaluated_models(self, shared: Shared, training: list[Unit]) -> list[EvaluatedModel]:
        raise NotImplementedError

    def served_model(self, shared: Shared, training: list[Unit], weights: np.ndarray,
                     mode: str | None = None) -> EvaluatedModel:
        """The model that answers for any preference ``weights`` (normalised to sum to 1). By default: a method
        with one model per preference serves the nearest trained model (``mode="nearest"``, the default) or the
        exact weighted combination of the trained models whose cell holds the preference (``"interpolate"``);
        a method with one model for every preference serves that model. Methods that condition on the preference
        (RiC) or combine models by it (Rewarded Soups) override this. A model that is none of the trained ones
        (a mix, a conditioned model) has no name: the caller names it."""
        if not self.serve_modes:
            require_no_mode(self, mode)
            return self.evaluated_models(shared, training)[0]
        mode = mode or self.serve_modes[0]
        if mode not in self.serve_modes:
            raise UserError(f"mode must be one of {', '.join(self.serve_modes)}, not '{mode}'")
        evaluated = self.evaluated_models(shared, training)
        trained = np.array([m.weights for m in evaluated], dtype=np.float64)
        if mode == "nearest":
            return _alone(evaluated[int(np.linalg.norm(trained - weights[None, :], axis=1).argmin())])
        try:
            indices, mix = enclosing_mix(trained, weights)
        except ValueError as exc:
            raise UserError(f"cannot interpolate preference {format_vector(weights, '.4g')}: {exc}") from None
        if len(indices) == 1:
            return _alone(evaluated[indices[0]])
        chosen = [evaluated[i] for i in indices]
        return EvaluatedModel("", [float(x) for x in weights],
                              adapters=[unit for model in chosen for unit in model.adapters], mix=mix,
                              made_from=[{"model": model.name, "weights": model.weights, "weight": share}
                                         for model, share in zip(chosen, mix)])


def _alone(model: EvaluatedModel) -> EvaluatedModel:
    return replace(model, made_from=[{"model": model.name, "weights": model.weights, "weight": 1.0}])


def require_no_mode(method: Method, mode: str | None) -> None:
    """A method that serves every preference by its own rule takes no ``mode``."""
    if mode is not None:
        raise UserError(f"mode '{mode}' applies to methods with one model per preference; {method.name} serves every "
                        "preference with its own rule (leave mode out)")


def by_name(units: list[Unit], prefix: str) -> list[Unit]:
    """The units whose name starts with ``prefix``, in declaration order."""
    return [unit for unit in units if unit.name.startswith(prefix)]


def sample_frame(scores, rows=None):
    """The (id, prompt, response, and where the data say it: truncated) training table of some scored samples."""
    part = scores if rows is None else scores.iloc[rows]
    return part[[c for c in ("id", "prompt", "response", TRUNCATED) if c in part.columns]].reset_index(drop=True)
