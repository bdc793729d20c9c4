"""Deterministic SIGKILL points for ``tests/test_kill_resume.py``, and the driver that runs a chain of them.

A point is one monkeypatch (no production hook) that, when the pipeline reaches a given place inside a given unit,
sleeps ``sleep`` seconds (time the killed attempt spent, which the manifest should still count) and then sends
SIGKILL to its own process: no ``finally``, no ``atexit``, no flush of anything.

The driver (``python -m tests.crash_points SPEC RESULTS`` with the repository root as working directory) imports
the pipeline once, then forks one child per step of the spec: a child installs its step's point and calls
``paretohqd.cli.main(["run", config])``. Forking from an imported parent saves the ~4 s of imports per process;
every child is a fresh copy of the same parent, so no state passes from one attempt to the next except the run
directory (as with separate processes). ``PARETOHQD_KILL_SPAWN=1`` starts a new interpreter per step instead.
After each step the driver records how the child ended, the manifest, and every file's size and mtime.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

CURRENT: dict = {"unit": None}
"""The unit the local executor is performing in this process (an observer on ``executors.perform``)."""

COUNTS: dict = {}


def _fire(sleep: float) -> None:
    time.sleep(sleep)
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # never reached


def _observe_units() -> None:
    from paretohqd.pipeline import executors

    real = executors.perform

    def perform(batch_actions, contexts, torch_threads=None):
        CURRENT["unit"] = contexts[0].name if contexts else None
        try:
            return real(batch_actions, contexts, torch_threads)
        finally:
            CURRENT["unit"] = None

    executors.perform = perform


def _counted(key: str) -> int:
    COUNTS[key] = COUNTS.get(key, 0) + 1
    return COUNTS[key]


def wrap_call(owner, attr: str, unit: str, nth: int, after: bool, fire, match=None) -> None:
    """The ``nth`` call of ``owner.attr`` inside ``unit`` (whose arguments pass ``match``) fires before the call
    runs, or right after it returned (``after``)."""
    real = getattr(owner, attr)
    key = f"{getattr(owner, '__name__', owner)}.{attr}"

    def wrapper(*args, **kwargs):
        hit = CURRENT["unit"] == unit and (match is None or match(*args, **kwargs)) and _counted(key) == nth
        if hit and not after:
            fire()
        result = real(*args, **kwargs)
        if hit:
            fire()
        return result

    setattr(owner, attr, wrapper)


def partial_write(run_dir: Path, relative: str, unit: str, fire) -> None:
    """While ``run_dir/relative`` is written (through ``paretohqd.io.atomic_path``, which every artifact write
    uses): the temporary file holds half of the content when the process dies, before fsync and rename."""
    import contextlib

    from paretohqd import io

    real = io.atomic_path
    target = (Path(run_dir) / relative).resolve()

    @contextlib.contextmanager
    def atomic_path(path):
        if CURRENT["unit"] != unit or Path(path).resolve() != target:
            with real(path) as tmp:
                yield tmp
            return
        with real(path) as tmp:
            yield tmp
            size = tmp.stat().st_size
            with open(tmp, "r+b") as handle:
                handle.truncate(size // 2)
            fire()

    io.atomic_path = atomic_path


def before_unit(unit: str, fire) -> None:
    """After the runner marked ``unit`` running, before its action starts (between two units)."""
    from paretohqd.pipeline import executors

    observed = executors.perform

    def perform(batch_actions, contexts, torch_threads=None):
        if contexts and contexts[0].name == unit:
            fire()
        return observed(batch_actions, contexts, torch_threads)

    executors.perform = perform


def staged_rename(unit: str | None, fire) -> None:
    """``os.replace`` of a ``.partial`` staging folder onto its model folder: everything is saved (``.complete``
    included) in the staging folder, nothing is in place. ``unit`` None: outside any unit (the embedded model's
    conversion)."""
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if CURRENT["unit"] == unit and ".partial" in Path(src).name:
            fire()
        return real(src, dst, *args, **kwargs)

    os.replace = replace


# ------------------------------------------------------------------------------------------------------ the points

def _scoring():
    import paretohqd.rewards.scoring as scoring

    return scoring


def _sft_trainer():
    import trl

    return trl.SFTTrainer


def _generation():
    import paretohqd.policy.generation as generation

    return generation


def _pipeline_score():
    import paretohqd.pipeline.score as score

    return score


def _io():
    from paretohqd import io

    return io


POINTS: dict[str, dict] = {
    # name: unit killed, what/where, how the points install themselves, and facts the test uses
    "score-mid-shard": dict(
        unit="score/brevity/000001", where="rewards.scoring.as_scores: 2nd of the shard's 4 scored batches",
        install=lambda run, fire: wrap_call(_scoring(), "as_scores", "score/brevity/000001", 2, False, fire)),
    "score-between-shards": dict(
        unit="score/brevity/000002", where="executors.perform: shard marked running, its action not started",
        install=lambda run, fire: before_unit("score/brevity/000002", fire)),
    "score-shard-saved-not-recorded": dict(
        unit="score/vowels/000000", where="pipeline.score.save_scores returned: the shard's .npy is in the "
                                          "cache, the runner has not recorded it done",
        install=lambda run, fire: wrap_call(_pipeline_score(), "save_scores", "score/vowels/000000", 1, True, fire),
        output_complete=True),
    "score-merge-writing": dict(
        unit="score", where="io.atomic_path: scores/scores.parquet half written",
        install=lambda run, fire: partial_write(run, "scores/scores.parquet", "score", fire)),
    "select-writing": dict(
        unit="select/pref_01", where="io.atomic_path: selection/pref_01.json half written",
        install=lambda run, fire: partial_write(run, "selection/pref_01.json", "select/pref_01", fire)),
    "stage1-mid-training": dict(
        unit="train/stage1/pref_00", where="trl.SFTTrainer.training_step: step 2 of 3",
        install=lambda run, fire: wrap_call(_sft_trainer(), "training_step", "train/stage1/pref_00", 2, False,
                                            fire)),
    "stage1-saved-not-renamed": dict(
        unit="train/stage1/pref_01", where="SFTTrainer.save_model returned: weights in the staging folder, "
                                           "tokenizer/card/.complete and the rename not done",
        install=lambda run, fire: wrap_call(_sft_trainer(), "save_model", "train/stage1/pref_01", 1, True, fire)),
    "stage2-generate-mid": dict(
        unit="stage2/generate/pref_00", where="policy.generation.cut_at_turn: first response of the 2nd batch",
        install=lambda run, fire: wrap_call(_generation(), "cut_at_turn", "stage2/generate/pref_00", 5, False,
                                            fire)),
    "stage2-generate-between-outputs": dict(
        unit="stage2/generate/pref_02", where="io.atomic_path: .jsonl written, its .meta.json half written",
        install=lambda run, fire: partial_write(run, "stage2/generations/pref_02.meta.json",
                                                "stage2/generate/pref_02", fire)),
    "stage2-score-cache": dict(
        unit="stage2/score", where="rewards.scoring.save_scores returned: the first cache shard of the generated "
                                   "samples saved, the second objective not scored",
        install=lambda run, fire: wrap_call(_scoring(), "save_scores", "stage2/score", 1, True, fire)),
    "stage2-select-writing": dict(
        unit="stage2/select/pool", where="io.atomic_path: stage2/selection/pool.json half written",
        install=lambda run, fire: partial_write(run, "stage2/selection/pool.json", "stage2/select/pool", fire)),
    "stage2-mid-training": dict(
        unit="train/stage2/pref_01", where="trl.SFTTrainer.training_step: step 2 of 2",
        install=lambda run, fire: wrap_call(_sft_trainer(), "training_step", "train/stage2/pref_01", 2, False,
                                            fire)),
    "stage2-save-rename": dict(
        unit="train/stage2/pref_02", where="os.replace of models/pref_02/stage2.partial: saved, not renamed",
        install=lambda run, fire: staged_rename("train/stage2/pref_02", fire)),
    "heldout-generate-mid": dict(
        unit="generate/pref_01", where="policy.generation.cut_at_turn: 2nd response of the batch",
        install=lambda run, fire: wrap_call(_generation(), "cut_at_turn", "generate/pref_01", 2, False, fire)),
    "heldout-base-writing": dict(
        unit="generate/base", where="io.atomic_path: generations/base.jsonl half written",
        install=lambda run, fire: partial_write(run, "generations/base.jsonl", "generate/base", fire)),
    "evaluate-scoring": dict(
        unit="evaluate", where="rewards.scoring.as_scores: 4th scored batch of the held-out answers (the first "
                               "objective's cache shard saved, the second's batch being scored)",
        install=lambda run, fire: wrap_call(_scoring(), "as_scores", "evaluate", 4, False, fire)),
    "evaluate-metrics-writing": dict(
        unit="evaluate", where="io.atomic_path: eval/metrics.json half written (scores.parquet and csv written)",
        install=lambda run, fire: partial_write(run, "eval/metrics.json", "evaluate", fire)),
    "report-writing": dict(
        unit="report", where="io.atomic_path: eval/report.md half written (front.png written)",
        install=lambda run, fire: partial_write(run, "eval/report.md", "report", fire)),
}

CONVERSION_POINTS: dict[str, dict] = {
    "convert-staged-not-renamed": dict(
        unit=None, where="os.replace of the embedded model's staging folder (saved, .complete written) onto "
                         "io.cache_root()/models/smollm2-135m-instruct",
        install=lambda run, fire: staged_rename(None, fire)),
}


# ------------------------------------------------------------------------------------------------------ the driver

def stamps(run_dir: Path, hashes: bool = False) -> dict:
    """Every file under ``run_dir``: [size, mtime_ns] (and its sha256 with ``hashes``)."""
    import hashlib

    files = {}
    if run_dir.exists():
        for path in sorted(run_dir.rglob("*")):
            if path.is_file():
                stat = path.stat()
                files[path.relative_to(run_dir).as_posix()] = [stat.st_size, stat.st_mtime_ns] + (
                    [hashlib.sha256(path.read_bytes()).hexdigest()] if hashes else [])
    return files


def run_step(config: str | None, run_dir: str, point: str | None, sleep: float) -> int:
    """In this process: install ``point`` (None: none) and run the pipeline on ``config`` (None: convert the
    embedded default model into ``io.cache_root()``); the exit code (if not killed)."""
    _observe_units()
    if config is None:
        from paretohqd.policy.load import EMBEDDED_DEFAULT, resolve_model_path

        if point is not None:
            CONVERSION_POINTS[point]["install"](Path(run_dir), lambda: _fire(sleep))
        resolve_model_path(EMBEDDED_DEFAULT)
        return 0
    from paretohqd.cli import main

    if point is not None:
        POINTS[point]["install"](Path(run_dir), lambda: _fire(sleep))
    return main(["run", config])


def _child(config, run_dir, point, sleep, log) -> None:
    code = 98
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        code = run_step(config, run_dir, point, sleep)
    except BaseException:  # noqa: BLE001 - whatever it was, the parent sees a non-zero code and the log
        traceback.print_exc()
        code = 99
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def drive(spec_path: str, results_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    spawn = os.environ.get("PARETOHQD_KILL_SPAWN") == "1"
    if not spawn:
        # Everything the children import, imported once (no torch computation before forking).
        import datasets  # noqa: F401
        import matplotlib
        import peft  # noqa: F401
        import transformers  # noqa: F401
        import trl  # noqa: F401

        import paretohqd.cli
        import paretohqd.methods
        import paretohqd.pipeline.evaluate
        import paretohqd.pipeline.plan
        import paretohqd.rewards.scoring
        import paretohqd.train.sft  # noqa: F401

        matplotlib.use("Agg")
        import matplotlib.pyplot

        import tests.helpers_objectives  # noqa: F401
    results = []
    for index, step in enumerate(spec["steps"]):
        log = str(Path(spec["logs"]) / f"{index:02d}-{step['point'] or 'complete'}.log")
        began = time.time()
        if spawn:
            with open(log, "w") as handle:
                code = subprocess.call([sys.executable, "-m", "tests.crash_points", "--one", step["config"] or "",
                                        step["run_dir"], step["point"] or "", str(spec["sleep"])],
                                       stdout=handle, stderr=subprocess.STDOUT)
            killed = -code if code < 0 else None
            code = None if code < 0 else code
        else:
            pid = os.fork()
            if pid == 0:
                _child(step["config"], step["run_dir"], step["point"], spec["sleep"], log)
            _, status = os.waitpid(pid, 0)
            killed = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        run_dir = Path(step["run_dir"])
        manifest = run_dir / "manifest.json"
        results.append({"point": step["point"], "signal": killed, "exit": code, "seconds": time.time() - began,
                        "log": log, "manifest": json.loads(manifest.read_text()) if manifest.exists() else None,
                        "files": stamps(run_dir, step.get("hashes", False))})
        Path(results_path).write_text(json.dumps(results))


if __name__ == "__main__":
    if sys.argv[1] == "--one":
        _, _, config, run_dir, point, sleep = sys.argv
        sys.exit(run_step(config or None, run_dir, point or None, float(sleep)))
    drive(sys.argv[1], sys.argv[2])
