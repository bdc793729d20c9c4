"""Generation units: one model answers a set of prompts, one JSONL file (and a sidecar with the sampling
settings) per unit. The model is the base, one trained model, or a weighted combination of several; a method may
condition the prompts the model sees (RiC writes target rewards into them) while the file keeps the original
prompt, which is what reward models score."""

from __future__ import annotations

import dataclasses
import functools
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import io
from ..config import GenerationConfig, SamplingConfig, from_dict
from ..data import TRUNCATED, distinct_prompts, prompt_columns
from ..policy import check_model, generate_responses, load_policy, sampling_record
from ..policy.generation import Replies, merge_responses
from .built_objectives import release_built_objectives
from .train import model_settings, rebuild_model_config
from .units import Unit, UnitContext


def generation_unit(name: str, stage: str, command: str, output: str, prompts: Unit, model, sampling: SamplingConfig,
                    seed: int, adapters: Sequence[Unit] = (), mix: Sequence[float] | None = None,
                    condition: Callable | None = None, condition_settings: Mapping | None = None,
                    inputs: Mapping[str, Unit] | None = None, prompt_sample: Mapping | None = None,
                    progress: bool = True, *, generation: GenerationConfig) -> Unit:
    """``prompts``: a unit whose first output is a Parquet table of prompts (test prompts, or scored samples with
    ``prompt_sample`` = ``{"count", "seed", "drop"}`` drawing distinct prompts from it). ``generation``: the run's
    backend; with vLLM, the generation units of one base model that are ready together form one group, answered by
    one engine call (:func:`run_generation_group`)."""
    model_values, placement = model_settings(model)
    upstream = {"prompts": prompts, **{f"adapter:{i}": unit for i, unit in enumerate(adapters)}, **(inputs or {})}
    settings: dict[str, Any] = {"model": model_values, "adapters": len(adapters),
                                "mix": None if mix is None else [float(w) for w in mix],
                                "sampling": dataclasses.asdict(sampling), "seed": seed,
                                "prompt_sample": dict(prompt_sample) if prompt_sample else None,
                                # files record which replies hit the token limit: earlier files do not
                                "truncation_recorded": True}
    if condition is not None:
        settings["condition"] = {"function": _qualified(condition), **dict(condition_settings or {})}
    options: dict[str, Any] = {**placement, "condition": condition, "progress": progress}
    group, group_action, check = "", None, None
    if generation.backend != "hf":
        # Only a non-default backend enters the key: runs made before backends existed keep their keys (a new
        # stage-2 generation key would retrain every stage-2 model).
        settings["backend"] = generation.backend
    if generation.backend == "vllm":
        options["vllm"] = dict(generation.vllm)  # engine arguments (memory, parallelism): not in the key
        group = "vllm:" + io.digest({"model": model_values, "engine": options["vllm"]})
        group_action = run_generation_group
        check = functools.partial(_check_vllm_unit, sampling, name)
    model_check = functools.partial(check_model, model.name_or_path, model.revision, device=model.device)
    return Unit(name=name, kind="generate", stage=stage, command=command, action=run_generation,
                outputs=(output, output.removesuffix(".jsonl") + ".meta.json"), upstream=upstream,
                settings=settings, options=options, group=group, group_action=group_action,
                check=model_check if check is None else lambda: (check(), model_check()))


def _check_vllm_unit(sampling: SamplingConfig, name: str) -> None:
    from ..policy.vllm_backend import check_vllm_available, check_vllm_sampling

    check_vllm_available()
    check_vllm_sampling(sampling, name)


def _qualified(function: Callable) -> str:
    target = getattr(function, "func", function)  # functools.partial
    return f"{target.__module__}:{target.__qualname__}"


def sample_prompts(frame: pd.DataFrame, spec: Mapping | None) -> pd.DataFrame:
    """The prompts a unit answers: all rows of a prompt table, or ``count`` distinct prompts drawn at random (in
    their original order) from a table of samples; with ``replace``, ``count`` samples' prompts drawn with
    replacement, in draw order (RiC's online rounds: a prompt with more samples is drawn more often)."""
    if not spec:
        return frame
    if spec.get("replace"):
        rows = np.random.default_rng(spec["seed"]).integers(0, len(frame), size=spec["count"])
        drawn = prompt_columns(frame.iloc[rows].reset_index(drop=True), tuple(spec.get("drop", ())))
        drawn.insert(0, "prompt_id", [f"d{i}" for i in range(len(drawn))])
        return drawn
    prompts = distinct_prompts(frame, drop=tuple(spec.get("drop", ())))
    prompts.insert(0, "prompt_id", [f"p{i}" for i in range(len(prompts))])
    rng = np.random.default_rng(spec["seed"])
    count = min(spec["count"], len(prompts))
    return prompts.iloc[np.sort(rng.choice(len(prompts), size=count, replace=False))].reset_index(drop=True)


def run_generation(ctx: UnitContext) -> None:
    if ctx.settings.get("backend") == "vllm":
        return run_generation_group([ctx])
    from tqdm.auto import tqdm

    s = ctx.settings
    prompts, shown = unit_prompts(ctx)
    started = time.perf_counter()
    policy = load_policy(rebuild_model_config(s["model"], ctx.options),
                         [ctx.input(f"adapter:{i}") for i in range(s["adapters"])], s["mix"])
    sampling = from_dict(SamplingConfig, s["sampling"])
    # In a multi-process launch every process answers its share of the batches and rank 0 writes the merge; the
    # shares are batches of one size, so rank 0's bar counts its own prompts times the number of processes.
    with tqdm(total=len(prompts), desc=f"generate {ctx.name}", unit="prompt", leave=False,
              disable=not ctx.options["progress"] or ctx.rank != 0) as bar:
        responses = generate_responses(policy, shown, sampling, s["seed"],
                                       progress=lambda count: bar.update(count * ctx.world_size),
                                       share=(ctx.rank, ctx.world_size))
    shares = ctx.gather(responses)
    if ctx.rank == 0:
        write_generation(ctx, prompts, merge_responses(shares), time.perf_counter() - started)


def run_generation_group(contexts: list[UnitContext]) -> None:
    """vLLM: every member's prompts (members are generation units of one base model) in one engine call; each
    member writes its own file, as :func:`run_generation` does. A member's weighted combination is first written as
    one adapter into a hidden folder beside its output, removed when the call is done."""
    from ..policy.vllm_backend import ModelPrompts, generate_with_vllm, prepare_models, release_engine

    started = time.perf_counter()
    head = contexts[0]
    if head.rank != 0:
        # In a multi-process launch rank 0 drives the engine (which spreads over GPUs itself, with
        # generation.vllm.tensor_parallel_size); the others wait until its files are written.
        head.gather(None)
        return
    model_config = rebuild_model_config(head.settings["model"], head.options)
    prompts = [unit_prompts(ctx) for ctx in contexts]
    combinations = [ctx.output.with_name(f".{ctx.output.name.removesuffix('.jsonl')}.combined") for ctx in contexts]
    try:
        served = prepare_models([([ctx.input(f"adapter:{i}") for i in range(ctx.settings["adapters"])],
                                  ctx.settings["mix"], folder) for ctx, folder in zip(contexts, combinations)],
                                model_config)
        requests = [ModelPrompts(model, shown, from_dict(SamplingConfig, ctx.settings["sampling"]),
                                 ctx.settings["seed"]) for ctx, model, (_, shown) in zip(contexts, served, prompts)]
        release_built_objectives()  # reward models scored with earlier in this process: the engine needs their memory
        answers = generate_with_vllm(requests, model_config, head.options["vllm"], progress=head.options["progress"])
    finally:
        # What runs next on this GPU (stage-2 training, scoring) needs the memory the engine holds.
        release_engine()
        for folder in combinations:
            shutil.rmtree(folder, ignore_errors=True)
    seconds = (time.perf_counter() - started) / len(contexts)  # the manifest splits a group's time the same way
    for ctx, (frame, _), answer in zip(contexts, prompts, answers):
        record = {**answer.record, "group_size": len(contexts)}
        if ctx.settings["mix"] is not None:  # its adapter folder is gone: say what it was made of
            models = [str(ctx.input(f"adapter:{i}")) for i in range(ctx.settings["adapters"])]
            record["combined_from"] = {"models": models, "mix": ctx.settings["mix"]}
        write_generation(ctx, frame, Replies(answer.responses, answer.truncated, answer.tokens), seconds,
                         {"backend": "vllm", "vllm": record})
    head.gather(None)


def unit_prompts(ctx: UnitContext) -> tuple[pd.DataFrame, list[str]]:
    """(the unit's prompt table, the prompts as its model sees them: conditioned when its method says so)."""
    prompts = sample_prompts(pd.read_parquet(ctx.input("prompts")), ctx.settings["prompt_sample"])
    shown = prompts["prompt"].tolist()
    if ctx.options["condition"] is not None:
        shown = ctx.options["condition"](shown, ctx.inputs)
    return prompts, shown


def write_generation(ctx: UnitContext, prompts: pd.DataFrame, replies: Replies, seconds: float,
                     backend_record: Mapping | None = None) -> None:
    """The unit's JSONL (its prompt rows with a response each, and ``truncated``: whether it hit the token limit)
    and its sidecar (sampling settings, how many replies hit the limit, and for a backend other than HF what that
    backend did)."""
    s = ctx.settings
    frame = prompts.copy()  # context columns travel with the prompt: objectives may read them
    frame["response"] = replies.texts
    frame[TRUNCATED] = np.asarray(replies.truncated, dtype=bool)
    io.write_text(ctx.outputs[0], frame.to_json(orient="records", lines=True, force_ascii=False))
    cut = int(frame[TRUNCATED].sum())
    meta = {"sampling": sampling_record(from_dict(SamplingConfig, s["sampling"]), s["seed"]),
            "num_prompts": len(frame), "truncated": cut, "tokens_generated": int(sum(replies.tokens)),
            "seconds": seconds, **(backend_record or {})}
    io.write_json(ctx.outputs[1], meta)
    ctx.log(f"generate: {ctx.name} answered {len(frame)} prompts in {seconds:.0f} s ({cut} cut at "
            f"max_new_tokens {s['sampling']['max_new_tokens']})")


def read_generations(path: Path) -> pd.DataFrame:
    return pd.read_json(path, lines=True, dtype=False)
