"""Generation units: one model answers a set of prompts, one JSONL file (and a sidecar with the sampling
settings) per unit. The model is the base, one trained model, or a weighted combination of several; a method may
condition the prompts the model sees (RiC writes target rewards into them) while the file keeps the original
prompt, which is what reward models score."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import io
from ..config import SamplingConfig, from_dict
from ..data import distinct_prompts
from ..policy import generate_responses, load_policy, sampling_record
from .train import model_settings, rebuild_model_config
from .units import Unit, UnitContext


def generation_unit(name: str, stage: str, command: str, output: str, prompts: Unit, model, sampling: SamplingConfig,
                    seed: int, adapters: Sequence[Unit] = (), mix: Sequence[float] | None = None,
                    condition: Callable | None = None, condition_settings: Mapping | None = None,
                    inputs: Mapping[str, Unit] | None = None, prompt_sample: Mapping | None = None,
                    progress: bool = True) -> Unit:
    """``prompts``: a unit whose first output is a Parquet table of prompts (test prompts, or scored samples with
    ``prompt_sample`` = ``{"count", "seed", "drop"}`` drawing distinct prompts from it)."""
    model_values, placement = model_settings(model)
    upstream = {"prompts": prompts, **{f"adapter:{i}": unit for i, unit in enumerate(adapters)}, **(inputs or {})}
    settings: dict[str, Any] = {"model": model_values, "adapters": len(adapters),
                                "mix": None if mix is None else [float(w) for w in mix],
                                "sampling": dataclasses.asdict(sampling), "seed": seed,
                                "prompt_sample": dict(prompt_sample) if prompt_sample else None}
    if condition is not None:
        settings["condition"] = {"function": _qualified(condition), **dict(condition_settings or {})}
    return Unit(name=name, kind="generate", stage=stage, command=command, action=run_generation,
                outputs=(output, output.removesuffix(".jsonl") + ".meta.json"), upstream=upstream,
                settings=settings, options={**placement, "condition": condition, "progress": progress})


def _qualified(function: Callable) -> str:
    target = getattr(function, "func", function)  # functools.partial
    return f"{target.__module__}:{target.__qualname__}"


def sample_prompts(frame: pd.DataFrame, spec: Mapping | None) -> pd.DataFrame:
    """The prompts a unit answers: all rows of a prompt table, or ``count`` distinct prompts drawn at random (in
    their original order) from a table of samples."""
    if not spec:
        return frame
    prompts = distinct_prompts(frame, drop=tuple(spec.get("drop", ())))
    prompts.insert(0, "prompt_id", [f"p{i}" for i in range(len(prompts))])
    rng = np.random.default_rng(spec["seed"])
    count = min(spec["count"], len(prompts))
    return prompts.iloc[np.sort(rng.choice(len(prompts), size=count, replace=False))].reset_index(drop=True)


def run_generation(ctx: UnitContext) -> None:
    from tqdm.auto import tqdm

    s = ctx.settings
    prompts = sample_prompts(pd.read_parquet(ctx.input("prompts")), s["prompt_sample"])
    started = time.perf_counter()
    policy = load_policy(rebuild_model_config(s["model"], ctx.options),
                         [ctx.input(f"adapter:{i}") for i in range(s["adapters"])], s["mix"])
    sampling = from_dict(SamplingConfig, s["sampling"])
    shown = prompts["prompt"].tolist()
    if ctx.options["condition"] is not None:
        shown = ctx.options["condition"](shown, ctx.inputs)
    with tqdm(total=len(prompts), desc=f"generate {ctx.name}", unit="prompt", leave=False,
              disable=not ctx.options["progress"]) as bar:
        responses = generate_responses(policy, shown, sampling, s["seed"], progress=bar.update)
    frame = prompts.copy()  # context columns travel with the prompt: objectives may read them
    frame["response"] = responses
    seconds = time.perf_counter() - started
    io.write_text(ctx.outputs[0], frame.to_json(orient="records", lines=True, force_ascii=False))
    io.write_json(ctx.outputs[1], {"sampling": sampling_record(sampling, s["seed"]), "num_prompts": len(frame),
                                   "seconds": seconds})
    ctx.log(f"generate: {ctx.name} answered {len(frame)} prompts in {seconds:.0f} s")


def read_generations(path: Path) -> pd.DataFrame:
    return pd.read_json(path, lines=True, dtype=False)
