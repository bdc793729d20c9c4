"""Stages shared by every method; each reads its inputs from the run directory and writes its outputs atomically."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd

from .. import io
from ..config import RunConfig
from ..data import load_data
from ..errors import UserError
from ..runs import RunDir

RESERVED_COLUMNS = ("id", "prompt", "response")


def score_hash(config: RunConfig) -> str:
    """Settings and the data files' identity: an edited data file reruns scoring and everything after it."""
    return chain_hash(config.section_hash("data", "objectives", "score"), source_stamp(config.data.source))


def source_stamp(sources) -> str:
    """Size and modification time of local data files (cheap, no reading); a Hub id stands for itself."""
    from pathlib import Path

    from ..data import resolve_source

    stamps = []
    for source in [sources] if isinstance(sources, str) else list(sources or []):
        path = Path(resolve_source(source))
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        stamps += [f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" if p.exists() else str(p) for p in files]
    return "|".join(stamps)


def load_samples(config: RunConfig) -> pd.DataFrame:
    """The training samples: everything in ``data`` except replies to held-out prompts."""
    from ..data import heldout_mask

    samples = _load_all_samples(config)
    if config.data.heldout_fraction > 0:
        samples = samples[~heldout_mask(samples["prompt"], config.data.heldout_fraction)].reset_index(drop=True)
        if samples.empty:
            raise UserError(f"data.heldout_fraction {config.data.heldout_fraction} leaves no training samples")
    return samples


def run_score(config: RunConfig, run: RunDir, force: bool = False, log=print) -> pd.DataFrame:
    """Score every sample with every objective -> scores/scores.parquet + scores/stats.json."""
    from ..rewards import build_objectives
    from ..rewards.scoring import score_samples, score_statistics

    scores_path = run.scores / "scores.parquet"
    with run.stage("score", score_hash(config), (scores_path,), force=force) as record:
        if record.skipped:
            log(f"score: done already ({scores_path})")
            return pd.read_parquet(scores_path)
        samples = load_samples(config)
        clash = [c.name for c in config.objectives if c.name in RESERVED_COLUMNS or
                 (c.name in samples.columns and not (c.type == "column" and c.column == c.name))]
        if clash:
            raise UserError(f"objective name '{clash[0]}' is already a column of the data; rename the objective")
        log(f"score: {len(samples)} samples x {len(config.objectives)} objectives "
            f"({', '.join(config.objective_names)})")
        objectives = build_objectives(config.objectives)
        started = time.perf_counter()
        table, details = score_samples(
            samples, objectives, [c.batch_size for c in config.objectives],
            Path(config.score.cache_dir) if config.score.cache_dir else run.scores / "cache",
            config.score.shard_size, config.score.sort_by_length, config.score.consistency_check,
            config.score.consistency_tolerance, show_progress=config.score.progress and _interactive())
        stats = score_statistics(table, config.objective_names, tuple(config.select.robust_quantiles))
        stats["scoring"] = details
        stats["wall_seconds"] = time.perf_counter() - started
        io.write_parquet(scores_path, table)
        io.write_json(run.scores / "stats.json", stats)
        log(f"score: wrote {scores_path}")
        return table


def _interactive() -> bool:
    return os.environ.get("PARETOHQD_PROGRESS", "1") != "0"


def chain_hash(*parts: str) -> str:
    """A stage's hash from its upstream hash and its own settings: any change upstream reruns it."""
    import hashlib

    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------------
# Generation units: one JSONL file per model, completed by a sidecar that names the settings hash.


def generation_done(path, unit_hash: str) -> bool:
    from pathlib import Path

    meta = Path(str(path).removesuffix(".jsonl") + ".meta.json")
    return Path(path).exists() and meta.exists() and io.read_json(meta).get("unit_hash") == unit_hash


def write_generations(path, frame: pd.DataFrame, meta: dict) -> None:
    """The JSONL first, then its sidecar: a unit counts as done only when both exist."""
    from pathlib import Path

    io.write_text(path, frame.to_json(orient="records", lines=True, force_ascii=False))
    io.write_json(Path(str(path).removesuffix(".jsonl") + ".meta.json"), meta)


def read_generations(path) -> pd.DataFrame:
    return pd.read_json(path, lines=True, dtype=False)


def generate_unit(path, model_loader, prompts: pd.DataFrame, config: RunConfig, sampling, seed: int,
                  unit_hash: str, extra: dict, log=print, condition=None) -> pd.DataFrame:
    """Generate one response per prompt with the model ``model_loader()`` returns, unless already done.

    ``condition`` rewrites each prompt the model sees (RiC writes target rewards into it); the file keeps the
    original prompt, which is what reward models score."""
    from ..generate.hf import generate_responses, sampling_record

    if generation_done(path, unit_hash):
        return read_generations(path)
    started = time.perf_counter()
    model, tokenizer = model_loader()
    from tqdm.auto import tqdm

    with tqdm(total=len(prompts), desc=f"generate {extra.get('model', '')}", unit="prompt", leave=False,
              disable=not _interactive()) as bar:
        shown = prompts["prompt"].tolist() if condition is None else [condition(p) for p in prompts["prompt"]]
        responses = generate_responses(model, tokenizer, shown, sampling, seed,
                                       config.model.system_prompt, max_prompt_tokens=config.train.max_length,
                                       progress=bar.update)
    frame = prompts.copy()  # context columns travel with the prompt: objectives may read them
    frame["response"] = responses
    for key, value in extra.items():
        frame[key] = value
    seconds = time.perf_counter() - started
    write_generations(path, frame, {"unit_hash": unit_hash, "sampling": sampling_record(sampling, seed),
                                    "num_prompts": len(frame), "seconds": seconds, **extra})
    log(f"generate: {extra.get('model', path)} answered {len(frame)} prompts in {seconds:.0f} s")
    return frame


def unique_prompts(samples: pd.DataFrame, objective_names: list[str], prefix: str = "p") -> pd.DataFrame:
    from ..data import distinct_prompts

    prompts = distinct_prompts(samples, drop=tuple(objective_names))
    prompts.insert(0, "prompt_id", [f"{prefix}{i}" for i in range(len(prompts))])
    return prompts


def load_test_prompts(config: RunConfig) -> pd.DataFrame:
    """Held-out prompts: ``evaluate.source`` if set, else the prompts ``data.heldout_fraction`` held out."""
    from ..data import distinct_prompts, heldout_mask, load_prompts

    ev = config.evaluate
    if ev.source is not None:
        prompts = load_prompts(ev.source, ev.adapter, ev.prompt_column, split=ev.split)
    else:
        if config.data.heldout_fraction <= 0:
            raise UserError("no test prompts: set evaluate.source, or data.heldout_fraction to hold some out")
        samples = _load_all_samples(config)
        prompts = distinct_prompts(samples[heldout_mask(samples["prompt"], config.data.heldout_fraction)])
    prompts = prompts.iloc[:: ev.every_nth]
    if ev.num_prompts is not None:
        prompts = prompts.iloc[: ev.num_prompts]
    if prompts.empty:
        raise UserError("the test prompt set is empty (check evaluate.source, every_nth and num_prompts)")
    prompts = prompts.reset_index(drop=True)
    prompts.insert(0, "prompt_id", [f"t{i}" for i in range(len(prompts))])
    return prompts


def check_objectives_score_text(config: RunConfig) -> None:
    """Stage 2 and evaluation score newly generated responses: every objective must read text, not a stored
    column."""
    stored = [c.name for c in config.objectives if c.type == "column"]
    if stored:
        raise UserError(f"objective '{stored[0]}' reads a stored column, so it cannot score generated responses; "
                        "training and evaluation need objectives that score text (columns suit score/select only)")


def _load_all_samples(config: RunConfig) -> pd.DataFrame:
    data = config.data
    return load_data(data.source, adapter=data.adapter, fmt=data.format, split=data.split,
                     prompt_column=data.prompt_column, response_column=data.response_column,
                     id_column=data.id_column, max_samples=data.max_samples).samples


def generation_settings(config: RunConfig) -> str:
    """What the held-out generations depend on (report thresholds do not regenerate anything)."""
    ev = config.evaluate
    return repr((ev.source, ev.adapter, ev.prompt_column, ev.split, ev.every_nth, ev.num_prompts, ev.include_base,
                 sorted(vars(ev.sampling).items()), config.model.system_prompt, config.train.max_length,
                 config.data.heldout_fraction))


def generate_models(config: RunConfig, run: RunDir, models: list[dict], model_hash: str, log=print) -> list[dict]:
    """Each trained model (``{"name", "weights", "path"}``, or a ``"loader"`` that builds it) and the base model
    answer the test prompts, one
    generation file per model in ``RUN/generations/``; finished files are kept."""
    import functools

    from ..models import load_causal_lm
    from ..train.sft import load_trained

    check_objectives_score_text(config)
    unit_hash = chain_hash(model_hash, generation_settings(config))
    prompts = load_test_prompts(config)
    folder = run.path / "generations"
    points = [{"name": m["name"], "weights": m["weights"], "file": folder / f"{m['name']}.jsonl",
               "loader": m.get("loader") or functools.partial(load_trained, m["path"], config.model),
               "condition": m.get("condition"), "seed": config.seed + 2000 + i}
              for i, m in enumerate(models)]
    if config.evaluate.include_base:
        points.append({"name": "base", "weights": None, "file": folder / "base.jsonl",
                       "loader": functools.partial(load_causal_lm, config.model.name_or_path, config.model.dtype),
                       "condition": None, "seed": config.seed + 2999})
    with run.stage("generate", unit_hash, tuple(p["file"] for p in points)) as record:
        if record.skipped and all(generation_done(p["file"], unit_hash) for p in points):
            log("generate: done already")
        else:
            for point in points:
                generate_unit(point["file"], point["loader"], prompts, config, config.evaluate.sampling,
                              seed=point["seed"], unit_hash=unit_hash, extra={"model": point["name"]}, log=log,
                              condition=point["condition"])
    return [{k: v for k, v in p.items() if k in ("name", "weights", "file")} for p in points]


def evaluate_models(config: RunConfig, run: RunDir, entries: list[dict], method: str, model_hash: str,
                    log=print) -> dict:
    """The evaluate stage over finished generation files -> RUN/eval/."""
    from ..evaluate.metrics import run_evaluate

    unit_hash = chain_hash(model_hash, config.section_hash("evaluate", "objectives"))
    metrics_path = run.path / "eval" / "metrics.json"
    with run.stage("evaluate", unit_hash, (metrics_path,)) as record:
        if record.skipped:
            log(f"evaluate: done already ({metrics_path})")
            return io.read_json(metrics_path)
        stages = run.manifest()["stages"]
        wall = {name: entry.get("wall_seconds", 0.0) for name, entry in stages.items() if name != "evaluate"}
        return run_evaluate(config, run, entries, method, wall, log=log)


def run_method(config: RunConfig, run: RunDir, method, log=print) -> dict:
    """The whole pipeline of a method module with ``run_train``, ``run_generate`` and ``run_evaluate_stage``;
    problems that would surface after training fail first."""
    from .paretohqd import resolve_preferences

    check_objectives_score_text(config)
    resolve_preferences(config)
    load_test_prompts(config)
    run_score(config, run, log=log)
    method.run_train(config, run, log=log)
    method.run_generate(config, run, log=log)
    return method.run_evaluate_stage(config, run, log=log)
