"""What a run reads from outside: the training samples and the test prompts, each materialised once in the run
directory by a unit whose key is the content of what was read (never a file's name or modification time)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..config import DataConfig, EvaluateConfig
from ..data import distinct_prompts, fingerprint, heldout_mask, load_data, load_prompts
from ..errors import UserError
from .distributed import is_main_process
from .units import Unit, UnitContext

RESERVED_COLUMNS = ("id", "prompt", "response")
SAMPLES = "inputs/samples.parquet"
TEST_PROMPTS = "inputs/test_prompts.parquet"
ROW_GROUP_ROWS = 16_384
"""Rows per Parquet row group of the inputs: a score shard reads the groups its rows are in, not the whole table."""

# Frames loaded while planning, by fingerprint: the unit that writes them need not read the data a second time.
_LOADED: dict[str, pd.DataFrame] = {}


def load_all_samples(data: DataConfig) -> pd.DataFrame:
    loaded = load_data(data.source, adapter=data.adapter, fmt=data.format, split=data.split,
                       prompt_column=data.prompt_column, response_column=data.response_column,
                       id_column=data.id_column, max_samples=data.max_samples, empty_text=data.empty_text)
    if loaded.dropped and is_main_process():
        print(f"data: left out {len(loaded.dropped)} samples with an empty prompt or response (first: "
              f"'{loaded.dropped[0]}'; data.empty_text: error refuses them instead)")
    return loaded.samples


def training_samples(data: DataConfig) -> pd.DataFrame:
    """Everything in ``data`` except replies to held-out prompts."""
    samples = load_all_samples(data)
    if data.heldout_fraction > 0:
        samples = samples[~heldout_mask(samples["prompt"], data.heldout_fraction)].reset_index(drop=True)
        if samples.empty:
            raise UserError(f"data.heldout_fraction {data.heldout_fraction} leaves no training samples")
    return samples


def test_prompts(evaluate: EvaluateConfig, data: DataConfig) -> pd.DataFrame:
    """Held-out prompts: ``evaluate.source`` if set, else the prompts ``data.heldout_fraction`` held out."""
    if evaluate.source is not None:
        prompts = load_prompts(evaluate.source, evaluate.adapter, evaluate.prompt_column, split=evaluate.split)
    else:
        if data.heldout_fraction <= 0:
            raise UserError("no test prompts: set evaluate.source, or data.heldout_fraction to hold some out")
        samples = load_all_samples(data)
        prompts = distinct_prompts(samples[heldout_mask(samples["prompt"], data.heldout_fraction)])
    prompts = prompts.iloc[:: evaluate.every_nth]
    if evaluate.prompt_seed is not None:
        prompts = prompts.iloc[np.random.default_rng(evaluate.prompt_seed).permutation(len(prompts))]
    if evaluate.num_prompts is not None:
        prompts = prompts.iloc[: evaluate.num_prompts]
    if prompts.empty:
        raise UserError("the test prompt set is empty (check evaluate.source, every_nth and num_prompts)")
    prompts = prompts.reset_index(drop=True)
    prompts.insert(0, "prompt_id", [f"t{i}" for i in range(len(prompts))])
    return prompts


def check_objective_names(samples: pd.DataFrame, objectives) -> None:
    clash = [c.name for c in objectives if c.name in RESERVED_COLUMNS or
             (c.name in samples.columns and not (c.type == "column" and c.column == c.name))]
    if clash:
        raise UserError(f"objective name '{clash[0]}' is already a column of the data; rename the objective")


def objectives_score_text(objectives) -> bool:
    """Whether every objective reads text (and so can score generated responses): a run whose objectives read
    stored columns can only score and select."""
    return not any(c.type == "column" for c in objectives)


def check_objectives_score_text(objectives) -> None:
    """Stage 2 and evaluation score newly generated responses: every objective must read text."""
    if not objectives_score_text(objectives):
        stored = [c.name for c in objectives if c.type == "column"]
        raise UserError(f"objective '{stored[0]}' reads a stored column, so it cannot score generated responses; "
                        "training and evaluation need objectives that score text (columns suit score/select only)")


@dataclasses.dataclass
class Inputs:
    """The run's external data as units, with the training samples themselves for planning (score shards)."""

    samples: pd.DataFrame
    samples_unit: Unit
    prompts_unit: Unit | None = None


def input_units(data: DataConfig, evaluate: EvaluateConfig | None, samples_file: Path | None = None) -> Inputs:
    """Load (and so check) the training samples and, when ``evaluate`` is given, the test prompts. ``samples_file``:
    the samples as a run wrote them (its ``inputs/samples.parquet``), read instead of ``data`` (serving a finished
    run that was copied or moved without its training data)."""
    samples = pd.read_parquet(samples_file) if samples_file is not None else training_samples(data)
    inputs = Inputs(samples, _frame_unit("inputs/samples", "score", SAMPLES, samples, training_samples, data))
    if evaluate is not None:
        prompts = test_prompts(evaluate, data)
        inputs.prompts_unit = _frame_unit("inputs/test_prompts", "generate", TEST_PROMPTS, prompts, test_prompts,
                                          evaluate, data)
    return inputs


def _frame_unit(name: str, stage: str, output: str, frame: pd.DataFrame, loader, *sections) -> Unit:
    content = fingerprint(frame)
    _LOADED[content] = frame
    return Unit(name=name, kind="input", stage=stage, command=stage, action=write_frame, outputs=(output,),
                data=content, options={"content": content, "loader": loader, "sections": sections})


def write_frame(ctx: UnitContext) -> None:
    """Write the frame read while planning; read it again (and compare) in a process that did not plan."""
    frame = _LOADED.pop(ctx.options["content"], None)
    if frame is None:
        frame = ctx.options["loader"](*ctx.options["sections"])
        if fingerprint(frame) != ctx.options["content"]:
            raise UserError(f"the data read for {ctx.name} changed since the run was planned; run it again")
    io.write_parquet(ctx.output, frame, row_group_size=ROW_GROUP_ROWS)
