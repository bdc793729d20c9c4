"""The one run / skip / resume / reuse mechanism, on toy units whose actions write small files."""

import contextlib
import json

import pytest

from paretohqd.errors import UserError
from paretohqd.pipeline import RunDir, Runner, Unit

CALLS = []


def write_value(ctx):
    CALLS.append(ctx.name)
    total = ctx.settings["value"] + sum(int(p[0].read_text()) for p in ctx.inputs.values())
    ctx.output.parent.mkdir(parents=True, exist_ok=True)
    ctx.output.write_text(str(total))


def fail(ctx):
    CALLS.append(ctx.name)
    raise RuntimeError("the action broke")


def unit(name, value, upstream=None, **extra):
    return Unit(name=name, kind="toy", stage=extra.pop("stage", "toy"), command="run",
                action=extra.pop("action", write_value), outputs=(extra.pop("output", f"out/{name}.txt"),),
                settings={"value": value}, upstream=upstream or {}, **extra)


@pytest.fixture(autouse=True)
def clear_calls():
    CALLS.clear()


def test_key_is_content_not_name_options_or_order():
    a = unit("a", 1, options={"batch_size": 8})
    assert a.key == unit("b", 1, options={"batch_size": 64}).key
    assert a.key != unit("a", 2).key
    assert unit("c", 1, upstream={"x": a}).key != unit("c", 1, upstream={"x": unit("a", 2)}).key
    assert unit("c", 1, upstream={"x": a}).key != unit("c", 1, upstream={"y": a}).key
    assert Unit(name="a", kind="other", stage="toy", command="run", action=write_value, outputs=("o",),
                settings={"value": 1}).key != a.key
    assert unit("d", 1, data="abc").key != unit("d", 1, data="abd").key


def test_run_skip_rerun_and_manifest(tmp_path):
    run = RunDir(tmp_path)
    first = unit("first", 1)
    second = unit("second", 10, upstream={"in": first})
    execution = Runner(run, log=lambda *_: None).execute([second])
    assert execution.ran == ["first", "second"] and (tmp_path / "out" / "second.txt").read_text() == "11"
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["units"]["second"]["status"] == "done" and manifest["units"]["second"]["key"] == second.key
    assert manifest["units"]["second"]["wall_seconds"] >= 0 and manifest["stages"]["toy"]["done"] == 2
    assert Runner(run, log=lambda *_: None).execute([second]).ran == []  # done: nothing runs
    (tmp_path / "out" / "first.txt").unlink()
    assert Runner(run, log=lambda *_: None).execute([second]).ran == []  # pull: a done target needs no upstream
    assert Runner(run, log=lambda *_: None).execute([first, second]).ran == ["first"]  # a missing output reruns
    changed = unit("second", 20, upstream={"in": first})
    assert Runner(run, log=lambda *_: None).execute([changed]).ran == ["second"]
    assert (tmp_path / "out" / "second.txt").read_text() == "21"
    assert Runner(run, log=lambda *_: None).execute([changed], force=["second"]).ran == ["second"]


def test_a_failure_is_recorded_and_nothing_is_marked_done(tmp_path):
    run = RunDir(tmp_path)
    broken = unit("broken", 1, action=fail)
    with pytest.raises(RuntimeError):
        Runner(run, log=lambda *_: None).execute([broken])
    entry = json.loads((tmp_path / "manifest.json").read_text())["units"]["broken"]
    assert entry["status"] == "failed" and "the action broke" in entry["error"]
    with pytest.raises(RuntimeError):
        Runner(run, log=lambda *_: None).execute([broken])
    assert CALLS == ["broken", "broken"]  # a failed unit is not done: it runs again


def test_checks_run_before_any_work(tmp_path):
    def refuse():
        raise UserError("bad setting for the second unit")

    first = unit("first", 1)
    second = unit("second", 2, upstream={"in": first}, check=refuse)
    with pytest.raises(UserError, match="bad setting"):
        Runner(RunDir(tmp_path), log=lambda *_: None).execute([second])
    assert CALLS == [] and not (tmp_path / "out").exists()


def test_a_key_produced_under_another_name_is_reused(tmp_path):
    run = RunDir(tmp_path)
    old = [unit("pref_00", 1), unit("pref_01", 2)]
    Runner(run, log=lambda *_: None).execute(old)
    swapped = [unit("pref_00", 2), unit("pref_01", 1), unit("pref_02", 3)]
    execution = Runner(run, log=lambda *_: None).execute(swapped)
    assert sorted(execution.reused) == ["pref_00", "pref_01"] and execution.ran == ["pref_02"]
    assert [(tmp_path / "out" / f"pref_0{i}.txt").read_text() for i in range(3)] == ["2", "1", "3"]
    assert Runner(run, log=lambda *_: None).execute(swapped).ran == []


def test_content_addressed_outputs_are_shared_between_runs(tmp_path):
    shared = tmp_path / "cache" / "{key}.txt"
    first = unit("shard", 5, output=str(shared), content_addressed=True)
    Runner(RunDir(tmp_path / "run_a"), log=lambda *_: None).execute([first])
    again = unit("shard", 5, output=str(shared), content_addressed=True)
    assert Runner(RunDir(tmp_path / "run_b"), log=lambda *_: None).execute([again]).ran == []
    assert CALLS == ["shard"]


def test_the_shared_claim_is_held_while_content_addressed_units_run_and_only_then(tmp_path):
    """The shared score cache's lock: another run that shares the cache waits for this run's scoring only."""
    held = []

    @contextlib.contextmanager
    def claim():
        held.append(True)
        try:
            yield
        finally:
            held.append(False)

    def record(ctx):
        CALLS.append((ctx.name, held[-1] if held else False))
        write_value(ctx)

    shard = unit("shard", 5, output=str(tmp_path / "cache" / "{key}.txt"), content_addressed=True, action=record)
    train = unit("train", 1, upstream={"scores": shard}, action=record)
    rescore = unit("rescore", 2, upstream={"model": train}, output=str(tmp_path / "cache" / "{key}.txt"),
                   content_addressed=True, action=record)
    report = unit("report", 3, upstream={"scores": rescore}, action=record)
    Runner(RunDir(tmp_path / "run"), log=lambda *_: None).execute([report], claim_shared=claim)
    assert [call for call in CALLS if isinstance(call, tuple)] == [
        ("shard", True), ("train", False), ("rescore", True), ("report", False)]
    assert held == [True, False, True, False]  # taken twice, released twice

    CALLS.clear()
    held.clear()
    broken = unit("broken", 7, output=str(tmp_path / "cache" / "{key}.txt"), content_addressed=True, action=fail)
    with pytest.raises(RuntimeError):
        Runner(RunDir(tmp_path / "run"), log=lambda *_: None).execute([broken], claim_shared=claim)
    assert held == [True, False]  # a failure releases it too


def test_a_run_directory_copied_with_new_times_reruns_nothing_and_changed_bytes_rerun(tmp_path):
    """`cp -r` (new modification times), or a move: the outputs' bytes decide, whatever their size (a 7B adapter is
    hundreds of MB; before 0.8 a file over 64 MB was judged by its time and retrained)."""
    import shutil

    def write_large(ctx):
        CALLS.append(ctx.name)
        ctx.output.parent.mkdir(parents=True, exist_ok=True)
        ctx.output.write_bytes(bytes(70 << 20))

    large = unit("large", 1, action=write_large)
    report = unit("report", 2, upstream={"in": large},
                  action=lambda ctx: (CALLS.append(ctx.name), ctx.output.parent.mkdir(exist_ok=True),
                                      ctx.output.write_text(str(ctx.inputs["in"][0].stat().st_size))))
    Runner(RunDir(tmp_path / "run"), log=lambda *_: None).execute([report])
    copied = tmp_path / "elsewhere" / "run"
    shutil.copytree(tmp_path / "run", copied, copy_function=shutil.copy)  # cp -r: every file gets a new time
    assert (copied / "out" / "large.txt").stat().st_mtime_ns != (tmp_path / "run" / "out" / "large.txt").stat(
        ).st_mtime_ns
    CALLS.clear()
    assert Runner(RunDir(copied), log=lambda *_: None).execute([report]).ran == [] and CALLS == []
    with open(copied / "out" / "large.txt", "r+b") as handle:  # one byte changed, size and all else kept
        handle.seek(50 << 20)
        handle.write(b"\x01")
    assert Runner(RunDir(copied), log=lambda *_: None).execute([report]).ran == ["large", "report"]


def test_prune_forgets_units_no_longer_planned(tmp_path):
    run = RunDir(tmp_path)
    runner = Runner(run, log=lambda *_: None)
    runner.execute([unit("keep", 1), unit("stale", 2)])
    assert runner.prune([unit("keep", 1)]) == ["stale"]
    assert not (tmp_path / "out" / "stale.txt").exists() and (tmp_path / "out" / "keep.txt").exists()
    assert "stale" not in json.loads((tmp_path / "manifest.json").read_text())["units"]


def test_done_stages_are_reported(tmp_path):
    lines = []
    target = unit("t", 1, stage="score")
    Runner(RunDir(tmp_path), log=lambda *_: None).execute([target])
    Runner(RunDir(tmp_path), log=lines.append).execute([target])
    assert lines == ["score: done already"]


def test_the_local_executor_holds_a_kinds_torch_threads_and_restores_them(tmp_path):
    import torch

    from paretohqd.config import ExecutionConfig, UnitResources
    from paretohqd.pipeline.executors import LocalExecutor
    from paretohqd.pipeline.rundir import RunDir
    from paretohqd.pipeline.runner import Runner

    seen = []

    def record_threads(ctx):
        seen.append(torch.get_num_threads())
        ctx.output.write_text("ok")

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # so that 1 is a change
    units = [Unit(name=f"u{kind}", kind=kind, stage="test", command="train", action=record_threads,
                  outputs=(f"u{kind}.txt",), settings={"kind": kind}) for kind in ("sft", "generate")]
    execution = ExecutionConfig(resources={"default": UnitResources(), "sft": UnitResources(torch_threads=1)})
    try:
        Runner(RunDir(tmp_path), log=lambda _: None, executor=LocalExecutor(execution)).execute(units)
        assert seen == [1, 2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
