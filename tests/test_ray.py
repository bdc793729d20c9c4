"""The Ray executor on a local 2-CPU cluster: same results as the local executor, units at once, failures named."""

import itertools
import json
import time

import pytest

from paretohqd.cli import main
from paretohqd.config import ExecutionConfig, UnitResources
from paretohqd.errors import UserError
from paretohqd.pipeline.executors import LocalExecutor, RayExecutor, ReadyGraph
from paretohqd.pipeline.rundir import RunDir
from paretohqd.pipeline.runner import Runner
from paretohqd.pipeline.units import Unit

from .test_pipeline import artifacts, write_run_config

ray = pytest.importorskip("ray", reason="Ray is an extra: pip install 'paretohqd[ray]'")

# One GPU that Ray counts and nothing uses (no GPU here): units that reserve it show how Ray places GPU work.
TWO_WORKERS = ExecutionConfig(executor="ray", ray_num_cpus=2, ray_num_gpus=1,
                              resources={"default": UnitResources(num_cpus=1, torch_threads=1)})


@pytest.fixture(scope="module", autouse=True)
def local_cluster():
    if ray.is_initialized():
        ray.shutdown()
    RayExecutor(TWO_WORKERS).connect()
    yield
    ray.shutdown()


def write_stamp(ctx):
    """Record when the unit ran and in which process; fail on request."""
    import os

    began = time.time()
    time.sleep(ctx.settings.get("sleep", 0.0))
    if ctx.settings.get("fail"):
        raise UserError(f"{ctx.name} was told to fail")
    ctx.output.parent.mkdir(parents=True, exist_ok=True)
    ctx.output.write_text(json.dumps({"began": began, "ended": time.time(), "pid": os.getpid(),
                                      "inputs": sorted(ctx.inputs)}))


def unit(name, sleep=0.0, fail=False, **upstream):
    return Unit(name=name, kind="select_ray", stage="test", command="train", action=write_stamp,
                outputs=(f"{name}.json",), settings={"sleep": sleep, "fail": fail, "name": name}, upstream=upstream)


def stamps(run_dir, names):
    return {name: json.loads((run_dir / f"{name}.json").read_text()) for name in names}


def test_independent_units_run_at_once_on_two_workers(tmp_path):
    a, b = unit("a", sleep=1.5), unit("b", sleep=1.5)
    c = unit("c", first=a, second=b)
    execution = Runner(RunDir(tmp_path), log=lambda _: None, executor=RayExecutor(TWO_WORKERS)).execute([c])
    assert sorted(execution.ran) == ["a", "b", "c"]
    seen = stamps(tmp_path, "abc")
    assert seen["a"]["pid"] != seen["b"]["pid"]
    assert seen["a"]["began"] < seen["b"]["ended"] and seen["b"]["began"] < seen["a"]["ended"]  # overlapped
    assert seen["c"]["began"] >= max(seen["a"]["ended"], seen["b"]["ended"])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert {entry["status"] for entry in manifest["units"].values()} == {"done"}
    assert manifest["units"]["a"]["wall_seconds"] >= 1.5


def test_the_longest_chain_starts_first():
    """With one slot, a unit with a chain of dependents goes before independent ones declared earlier."""
    lone = [unit(f"lone{i}") for i in range(3)]
    head = unit("head")
    tail = unit("tail2", after=unit("tail1", after=head))
    graph = ReadyGraph([*lone, head, head_dependent := tail.upstream["after"], tail])
    height = graph.heights()
    assert height[id(head)] == 3 and height[id(head_dependent)] == 2 and height[id(lone[0])] == 1
    order = sorted(graph.ready(), key=lambda u: (-height[id(u)], graph.position[id(u)]))
    assert order[0] is head


def test_a_failing_unit_is_named_and_the_others_finish(tmp_path):
    good, bad = unit("good", sleep=1.0), unit("bad", fail=True)
    after = unit("after", first=good, second=bad)
    runner = Runner(RunDir(tmp_path), log=lambda _: None, executor=RayExecutor(TWO_WORKERS))
    with pytest.raises(UserError, match="bad was told to fail"):
        runner.execute([after])
    manifest = json.loads((tmp_path / "manifest.json").read_text())["units"]
    assert manifest["good"]["status"] == "done" and manifest["bad"]["status"] == "failed"
    assert "after" not in manifest and (tmp_path / "good.json").exists()


def test_a_unit_asking_for_more_than_the_cluster_has_fails_before_any_work(tmp_path):
    greedy = ExecutionConfig(executor="ray", resources={"default": UnitResources(num_gpus=2)})
    runner = Runner(RunDir(tmp_path), log=lambda _: None, executor=RayExecutor(greedy))
    with pytest.raises(UserError, match="asks for 2 GPU but the Ray cluster has 1"):
        runner.execute([unit("a")])
    assert not (tmp_path / "a.json").exists()


def test_each_unit_that_reserves_a_gpu_runs_in_a_fresh_worker_process(tmp_path):
    """A reused worker would keep the CUDA context of the GPU it first touched, its cached models and engines."""
    on_gpu = ExecutionConfig(executor="ray", resources={"default": UnitResources(num_cpus=1, torch_threads=1),
                                                        "select_ray": UnitResources(num_cpus=1, num_gpus=1)})
    chain = [unit("g0")]
    for i in range(1, 3):
        chain.append(unit(f"g{i}", before=chain[-1]))
    Runner(RunDir(tmp_path / "gpu"), log=lambda _: None, executor=RayExecutor(on_gpu)).execute([chain[-1]])
    assert len({seen["pid"] for seen in stamps(tmp_path / "gpu", ["g0", "g1", "g2"]).values()}) == 3


def answer_together(contexts):
    """A vLLM engine's call: every member answered at once; the call is recorded (one line per engine start)."""
    with open(contexts[0].output.parent / "engine_starts.txt", "a") as starts:
        starts.write(" ".join(c.name for c in contexts) + "\n")
    for ctx in contexts:
        write_stamp(ctx)


def eleven_preferences(group: str = "vllm:base"):
    """The held-out generation of an 11-preference run: the base model's (ready at once) and each preference's,
    ready when its model has trained (training times differ)."""
    base = Unit(name="generate/base", kind="generate", stage="test", command="generate", action=write_stamp,
                outputs=("generate_base.json",), settings={"name": "base"}, group=group, group_action=answer_together)
    generations = [base]
    for i in range(11):
        train = unit(f"train_{i:02d}", sleep=0.05 + 0.03 * (i % 4))
        generations.append(Unit(name=f"generate/pref_{i:02d}", kind="generate", stage="test", command="generate",
                                action=write_stamp, outputs=(f"generate_{i:02d}.json",), settings={"i": i},
                                upstream={"model": train}, group=group, group_action=answer_together))
    return generations


@pytest.mark.parametrize("executor", ["ray", "local"])
def test_a_vllm_group_starts_one_engine_for_every_adapter_of_an_eleven_preference_run(tmp_path, executor):
    """Before, the base model's generation was ready first and started an engine alone while the models trained,
    and the local executor started one more for each preference as its model finished (measured before this
    change: Ray 2 engine starts, local 12); now the group waits for the members that become ready without it."""
    chosen = RayExecutor(TWO_WORKERS) if executor == "ray" else LocalExecutor()
    Runner(RunDir(tmp_path), log=lambda _: None, executor=chosen).execute(eleven_preferences())
    starts = (tmp_path / "engine_starts.txt").read_text().splitlines()
    assert len(starts) == 1 and len(starts[0].split()) == 12


def test_a_group_member_that_needs_another_members_output_is_not_waited_for(tmp_path):
    """Stage 2: the generators' replies train the models whose held-out replies are in the same engine group."""
    first = Unit(name="generate/stage2", kind="generate", stage="test", command="generate", action=write_stamp,
                 outputs=("stage2.json",), settings={"name": "stage2"}, group="vllm:base",
                 group_action=answer_together)
    trained = unit("train_stage2", model=first)
    second = Unit(name="generate/final", kind="generate", stage="test", command="generate", action=write_stamp,
                  outputs=("final.json",), settings={"name": "final"}, upstream={"model": trained},
                  group="vllm:base", group_action=answer_together)
    Runner(RunDir(tmp_path), log=lambda _: None, executor=RayExecutor(TWO_WORKERS)).execute([second])
    assert (tmp_path / "engine_starts.txt").read_text().splitlines() == ["generate/stage2", "generate/final"]


def test_groups_run_as_one_call(tmp_path):
    calls = []

    def together(contexts):
        calls.append([c.name for c in contexts])
        for ctx in contexts:
            write_stamp(ctx)

    members = [Unit(name=f"g{i}", kind="generate", stage="test", command="generate", action=write_stamp,
                    outputs=(f"g{i}.json",), settings={"i": i}, group="engine", group_action=together)
               for i in range(3)]
    Runner(RunDir(tmp_path), log=lambda _: None, executor=LocalExecutor()).execute(members)
    assert calls == [["g0", "g1", "g2"]]


def test_a_whole_run_on_ray_equals_the_local_run(tiny_policy, tmp_path):
    local = write_run_config(tmp_path, tiny_policy, "local")
    on_ray = write_run_config(tmp_path, tiny_policy, "ray")
    assert main(["run", str(local)]) == 0
    assert main(["run", str(on_ray), "--execution.executor", "ray", "--execution.ray_num_cpus", "2",
                 "--execution.resources.default.torch_threads", "1"]) == 0
    assert artifacts(tmp_path / "ray") == artifacts(tmp_path / "local")
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert {entry["status"] for entry in manifest["units"].values()} == {"done"}
    # Two preferences trained at the same time: their stage-1 units overlapped.
    entries = [manifest["units"][f"train/stage1/pref_{i:02d}"] for i in range(3)]
    spans = sorted((e["started"], e["finished"]) for e in entries)
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))
    assert main(["run", str(on_ray), "--execution.executor", "ray"]) == 0
    assert json.loads((tmp_path / "ray" / "manifest.json").read_text())["units"] == manifest["units"]


def die_once(ctx):
    """Kill this worker process the first time (a lost node, an out-of-memory kill); succeed the next."""
    import os

    marker = ctx.output.with_name(ctx.output.name + ".attempted")
    if not marker.exists():
        marker.write_text("1")
        os._exit(1)
    ctx.output.write_text("survived")


def test_a_lost_worker_is_retried_and_named_when_retries_run_out(tmp_path):
    def dying(name):
        return Unit(name=name, kind="select_ray", stage="test", command="train", action=die_once,
                    outputs=(f"{name}.txt",), settings={"name": name})

    retried = ExecutionConfig(executor="ray", max_retries=1, resources=TWO_WORKERS.resources)
    execution = Runner(RunDir(tmp_path), log=lambda _: None, executor=RayExecutor(retried)).execute([dying("a")])
    assert execution.ran == ["a"] and (tmp_path / "a.txt").read_text() == "survived"
    once = ExecutionConfig(executor="ray", max_retries=0, resources=TWO_WORKERS.resources)
    with pytest.raises(UserError, match="unit b: its Ray worker died and was retried 0 time"):
        Runner(RunDir(tmp_path), log=lambda _: None, executor=RayExecutor(once)).execute([dying("b")])
    assert json.loads((tmp_path / "manifest.json").read_text())["units"]["b"]["status"] == "failed"


def test_an_address_with_no_cluster_is_one_sentence_in_seconds():
    import socket

    from paretohqd.pipeline.executors import _check_reachable

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    began = time.perf_counter()
    with pytest.raises(UserError, match=f"execution.ray_address '127.0.0.1:{port}': no Ray cluster answers there"):
        _check_reachable(f"127.0.0.1:{port}")
    assert time.perf_counter() - began < 10
    _check_reachable("auto")  # left to ray.init
