"""One plan over the processes of a launch: two CPU processes over gloo, started by torchrun (toy units) and by
`paretohqd run --accelerate_config` (a tiny ParetoHqD run), against a single process doing the same."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from paretohqd.cli import main
from paretohqd.launch import SHIPPED, accelerate_config_path, split_launch_options, without_launch_arguments

from .conftest import REPO, torch_threads
from .test_pipeline import write_run_config


def _gloo_available() -> bool:
    try:
        import torch.distributed as dist
    except ImportError:
        return False
    return dist.is_available() and dist.is_gloo_available()


needs_gloo = pytest.mark.skipif(not _gloo_available(), reason="torch.distributed with the gloo backend is not "
                                                              "available in this torch build")


def launch_env(*paths) -> dict:
    """Two CPU processes whatever the machine has: no GPU (two ranks on one GPU would fight over it), one thread
    each (the two cores are theirs), quiet; ``paths`` join the repository on the import path."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "PARETOHQD_PROGRESS": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), *map(str, paths), os.environ.get("PYTHONPATH")]))}
    env.pop("WORLD_SIZE", None)
    return env


# ----------------------------------------------------------------------------------------------------------------
# The launch arguments, without launching


def test_shipped_accelerate_configs_are_valid_for_accelerate():
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    for name in SHIPPED:
        parsed = launch_command_parser().parse_args(["--config_file", str(accelerate_config_path(name)),
                                                     "--module", "paretohqd.cli", "run", "config.yaml"])
        checked, _, _ = _validate_launch_command(parsed)
        assert checked.num_processes == 8 and checked.module and checked.training_script_args == ["run",
                                                                                                  "config.yaml"]
        assert checked.use_deepspeed == name.startswith("zero") and checked.use_fsdp == (name == "fsdp2")


def test_launch_options_go_to_accelerate_and_the_rest_to_the_command():
    extra = ["--num_processes", "2", "--select.k", "64", "--seed", "3", "--main_process_port=0", "--multi_gpu",
             "--output_dir", "runs/x"]
    launch, overrides = split_launch_options(extra)
    assert launch == ["--num_processes", "2", "--main_process_port=0", "--multi_gpu"]
    assert overrides == ["--select.k", "64", "--seed", "3", "--output_dir", "runs/x"]
    argv = ["run", "c.yaml", "--accelerate_config", "zero3", *extra]
    assert without_launch_arguments(argv, launch) == ["run", "c.yaml", *overrides]
    assert without_launch_arguments(["run", "c.yaml", "--accelerate_config=ddp"], []) == ["run", "c.yaml"]


def test_a_one_machine_gpu_launch_starts_one_process_per_visible_gpu(tmp_path):
    from paretohqd.errors import UserError
    from paretohqd.launch import process_count_options

    said = []
    ddp = accelerate_config_path("ddp")  # says 8
    assert process_count_options(ddp, [], visible_gpus=3, log=said.append) == ["--num_processes", "3"]
    assert "3 processes, one per visible GPU (the config says 8" in said[0]
    assert process_count_options(ddp, ["--num_processes", "2"], visible_gpus=3) == []  # the user's number holds
    assert process_count_options(accelerate_config_path("zero3"), [], visible_gpus=8, log=said.append) == [
        "--num_processes", "8"] and len(said) == 1  # the number it had: nothing to say
    with pytest.raises(UserError, match="no GPU is visible here: pass --num_processes N --cpu"):
        process_count_options(ddp, [], visible_gpus=0)
    cpu = tmp_path / "cpu.yaml"
    cpu.write_text(yaml.safe_dump(CPU_LAUNCH))
    several = tmp_path / "nodes.yaml"
    several.write_text(yaml.safe_dump({**yaml.safe_load(ddp.read_text()), "num_machines": 2, "num_processes": 16}))
    assert process_count_options(cpu, [], visible_gpus=0) == process_count_options(several, [], visible_gpus=1) == []


@pytest.mark.parametrize("value, message", [("zero4", "neither a file nor a shipped accelerate config"),
                                            ("missing/config.yaml", "neither a file nor a shipped")])
def test_a_bad_accelerate_config_is_one_sentence_before_anything_starts(tmp_path, capsys, value, message):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "run")}))
    assert main(["run", str(config), "--accelerate_config", value]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_deepspeed_configs_need_deepspeed(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name, *a))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "run")}))
    assert main(["run", str(config), "--accelerate_config", "zero3"]) == 2
    assert "pip install deepspeed" in capsys.readouterr().err


def test_a_file_lock_makes_the_next_holder_wait(tmp_path):
    import threading

    from paretohqd.locking import waiting_lock

    lock, acquired = tmp_path / "models" / "smollm2.lock", threading.Event()

    def convert_too():
        with waiting_lock(lock):  # flock locks each open file: a thread waits as another process would
            acquired.set()

    with waiting_lock(lock):
        other = threading.Thread(target=convert_too)
        other.start()
        assert not acquired.wait(0.3)
    assert acquired.wait(10)
    other.join()


# ----------------------------------------------------------------------------------------------------------------
# The executor on toy units: order, shares, rank 0's bookkeeping, agreed failures

WORKER = textwrap.dedent('''
    import os, sys
    from pathlib import Path

    from paretohqd.errors import UserError
    from paretohqd.pipeline import RunDir, Runner, Unit
    from paretohqd.pipeline.distributed import DistributedExecutor

    def shared_sum(ctx):  # a unit every process runs: each gathers its share, rank 0 writes
        values = ctx.gather(ctx.rank + 1)
        if ctx.rank == 0:
            ctx.output.parent.mkdir(parents=True, exist_ok=True)
            ctx.output.write_text(f"{sum(values)} of {ctx.world_size}")

    def alone(ctx):  # a unit rank 0 runs by itself: a world of one
        ctx.output.write_text(f"rank {ctx.rank} of {ctx.world_size} on process {os.environ['RANK']}")

    def failing(ctx):  # rank 1 fails before its share; rank 0 waits for it in the gather
        if ctx.rank == 1:
            raise UserError("row 7 is malformed") if ctx.settings["user"] else ValueError("no such token")
        ctx.gather("a share")

    def unit(name, kind, action, upstream=None, user=True):
        return Unit(name=name, kind=kind, stage="toy", command="run", action=action, outputs=(f"out/{name}.txt",),
                    settings={"user": user}, upstream=upstream or {})

    for folder, user in ((sys.argv[1], True), (sys.argv[2], False)):
        first = unit("first", "score_shard", shared_sum)
        second = unit("second", "toy", alone, {"in": first})
        third = unit("third", "generate", failing, {"in": second}, user)
        executor = DistributedExecutor([first, second, third])
        runner = Runner(RunDir(folder), log=lambda *_: None, executor=executor, main_process=executor.main_process)
        try:
            runner.execute([third])
        except BaseException as exc:  # one file per rank: the two processes' prints would interleave
            with open(Path(sys.argv[3]) / f"rank{executor.rank}.txt", "a") as said:
                said.write(f"rank {executor.rank} stopped: {type(exc).__name__}: {exc}\\n")
''')


@needs_gloo
def test_units_share_work_and_every_rank_stops_with_the_same_sentence(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    user, other = tmp_path / "user", tmp_path / "other"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(user), str(other), str(tmp_path)], env=launch_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    stopped = sorted(line for rank in (0, 1) for line in (tmp_path / f"rank{rank}.txt").read_text().splitlines())
    assert stopped == ["rank 0 stopped: UnitFailed: unit third failed on rank 1: ValueError: no such token",
                       "rank 0 stopped: UserError: row 7 is malformed",
                       "rank 1 stopped: UnitFailed: unit third failed on rank 1: ValueError: no such token",
                       "rank 1 stopped: UserError: row 7 is malformed"]
    for folder in (user, other):
        assert (folder / "out" / "first.txt").read_text() == "3 of 2"  # 1 + 2: both shares, merged on rank 0
        assert (folder / "out" / "second.txt").read_text() == "rank 0 of 1 on process 0"
        units = json.loads((folder / "manifest.json").read_text())["units"]
        assert [units[n]["status"] for n in ("first", "second", "third")] == ["done", "done", "failed"]
    assert json.loads((user / "manifest.json").read_text())["units"]["third"]["error"] == \
        "UserError: row 7 is malformed"


# ----------------------------------------------------------------------------------------------------------------
# A tiny ParetoHqD run relaunched by `paretohqd run --accelerate_config` on two CPU processes

# Two CPU processes: `--cpu --num_processes 2` would silently start one, MULTI_GPU with use_cpu starts two (the
# test checks that two trained); port 0 picks a free one.
CPU_LAUNCH = {"compute_environment": "LOCAL_MACHINE", "distributed_type": "MULTI_GPU", "use_cpu": True,
              "num_processes": 2, "num_machines": 1, "machine_rank": 0, "gpu_ids": "all", "mixed_precision": "no",
              "main_process_port": 0, "rdzv_backend": "static", "same_network": True, "debug": False}


def relaunch(config, accelerate_config, *overrides, env=None):
    return subprocess.run([sys.executable, "-m", "paretohqd.cli", "run", str(config), "--accelerate_config",
                           str(accelerate_config), *overrides], env=env or launch_env(), capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def launched(tiny_policy, tmp_path_factory):
    """(run config, accelerate config, the launch's stdout): two preferences, three score shards of four batches
    per objective, three test prompts answered one per batch, so that both ranks have shares of everything."""
    tmp_path = tmp_path_factory.mktemp("distributed")
    config = write_run_config(
        tmp_path, tiny_policy, preferences__weights=[[1, 0], [0, 1]], stage2__enabled=False, score__shard_size=16,
        objectives=[{"name": "brevity", "builtin": "conciseness", "batch_size": 4},
                    {"name": "vowels", "type": "callable", "callable": "tests.helpers_objectives:vowel_share",
                     "batch_size": 4}],
        evaluate__sampling={"max_new_tokens": 8, "batch_size": 1})
    accelerate_config = tmp_path / "cpu2.yaml"
    accelerate_config.write_text(yaml.safe_dump(CPU_LAUNCH))
    done = relaunch(config, accelerate_config)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return config, accelerate_config, done.stdout


@needs_gloo
def test_both_ranks_train_and_rank_0_writes_everything_once(launched):
    import paretohqd
    from paretohqd.config import load_config
    from paretohqd.pipeline.runner import closure

    config, _, out = launched
    run = config.parent / "run"
    for pref in ("pref_00", "pref_01"):
        training = json.loads((run / "models" / pref / "stage1" / "training.json").read_text())
        assert training["world_size"] == 2 and training["global_batch_size"] == 4  # 2 per device x 2 processes
        assert [(r["rank"], r["steps"], r["sequences"]) for r in training["ranks"]] == [(0, 3, 6), (1, 3, 6)]
        assert out.count(f"train {pref}/stage1: 6 samples, global batch 4, 3 optimizer steps") == 1
    planned = {unit.name for unit in closure(paretohqd.plan(load_config(config)).targets["run"])}
    units = json.loads((run / "manifest.json").read_text())["units"]
    assert set(units) == planned and all(entry["status"] == "done" for entry in units.values())
    for line in ("score: 40 samples x 2 objectives", "generate: generate/base answered 3 prompts",
                 "evaluate: hypervolume"):
        assert out.count(line) == 1  # said once: the other rank is quiet
    assert (run / "config.resolved.yaml").is_file() and (run / "env.json").is_file()
    assert not [p for p in run.rglob("*") if p.name.endswith((".tmp", ".partial")) or ".reuse" in p.name]


@needs_gloo
def test_sharded_units_are_byte_identical_to_one_process(launched, tmp_path):
    """Scores: one process scoring afresh writes the launch's shards and merge to the byte. Generation: every
    generation unit of the launch, run again here by one process on the launch's own trained
    models, writes the launch's files to the byte. (A whole single-process run would train other models: the number
    of processes is in the training keys, as it changes the global batch.)"""
    import dataclasses

    import paretohqd
    from paretohqd.pipeline.generate import run_generation
    from paretohqd.pipeline.rundir import RunDir
    from paretohqd.pipeline.runner import Runner

    config, _, _ = launched
    run, single = config.parent / "run", tmp_path / "single"
    assert main(["score", str(config), "--output_dir", str(single)]) == 0
    # every score file, not the cost records beside cached shards (their seconds differ from run to run)
    scored = [p.relative_to(run) for p in sorted((run / "scores").rglob("*"))
              if p.is_file() and not p.name.endswith(".cost.json")]
    assert len([p for p in scored if p.suffix == ".npy"]) == 6  # 3 shards x 2 objectives
    for path in scored:
        assert (single / path).read_bytes() == (run / path).read_bytes(), path
    units = [u for u in paretohqd.plan(paretohqd.load_config(config)).units if u.kind == "generate"]
    assert len(units) == 3  # 2 preferences and the base model on the test prompts
    launched_run = Runner(RunDir(run), log=lambda _: None)
    for unit in units:
        context = launched_run.context(unit)
        again = [tmp_path / "again" / unit.name / path.name for path in context.outputs]
        with torch_threads():  # as each launched rank ran it: the config's execution.resources torch_threads
            run_generation(dataclasses.replace(context, outputs=again))
        assert again[0].read_bytes() == context.outputs[0].read_bytes(), unit.name


@needs_gloo
def test_a_second_launch_skips_everything(launched):
    config, accelerate_config, _ = launched
    manifest = config.parent / "run" / "manifest.json"
    before = manifest.read_bytes()
    done = relaunch(config, accelerate_config)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.count("done already") == 5 and "train " not in done.stdout
    assert manifest.read_bytes() == before


SHORT_ON_RANK_1 = textwrap.dedent('''
    import os

    def short_on_rank_1(prompts, responses):  # one score too few, on the second process only
        return [0.5] * (len(responses) - (os.environ.get("RANK") == "1"))
''')


@needs_gloo
def test_a_failure_on_one_rank_stops_every_rank_with_its_sentence(launched):
    config, accelerate_config, _ = launched
    (config.parent / "flaky_objective.py").write_text(SHORT_ON_RANK_1)
    failing = config.parent / "failing"
    done = relaunch(config, accelerate_config, "--output_dir", str(failing), "--objectives.1.callable",
                    "flaky_objective:short_on_rank_1", env=launch_env(config.parent))
    sentence = "paretohqd: error: objective 'vowels' returned 3 scores for 4 samples"
    assert done.returncode == 2, done.stderr[-4000:]
    # Each rank says it once (counted, not split in lines: the two processes' unbuffered writes may interleave).
    assert done.stderr.count("paretohqd: error: ") == 2 and done.stderr.count(sentence) == 2
    entry = json.loads((failing / "manifest.json").read_text())["units"]["score/vowels/000000"]
    assert entry["status"] == "failed" and entry["error"] == "UserError: " + sentence.removeprefix(
        "paretohqd: error: ")

