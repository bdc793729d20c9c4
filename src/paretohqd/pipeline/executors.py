"""Executors run the units an execution needs, in dependency order, and report each outcome to the runner.

``LocalExecutor``: in this process, one unit after another (the default, and what a single GPU or a CPU wants).
``RayExecutor``: units that do not depend on each other run at once on Ray workers, on one machine or a cluster
(``execution.ray_address``); their results are files in the run directory, so a cluster's nodes must share its
filesystem. Ray places, starts and retries the work; what Ray does not know is which ready unit matters most, so
the executor hands Ray the ready units in order of their longest chain of dependents (the representative stage-1
models before the other preferences, so that stage-2 generation starts while those still train) and only as many
as the cluster's CPUs and GPUs can run at once.

Units of one ``group`` that are ready together run as one call (one vLLM engine for every adapter).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..config import ExecutionConfig, UnitResources
from ..env import quiet_library_warnings
from ..env import torch_threads as threads_held
from ..errors import UserError
from .rundir import CudaUse
from .units import Unit, UnitContext, UnitLog

RAY_TOKEN = Path.home() / ".ray" / "auth_token"

Start = Callable[[Unit], bool]
Finish = Callable[[Unit, float, "BaseException | None", "float | None"], None]
"""(unit, wall seconds, its failure or None, the CUDA devices it used: None where unknown)."""


class ReadyGraph:
    """The units of one execution, the dependencies among them, and which can start."""

    def __init__(self, units: Sequence[Unit]):
        self.units = list(units)
        members = {id(u) for u in self.units}
        self.position = {id(u): i for i, u in enumerate(self.units)}
        self.waiting = {id(u): {id(d) for d in u.dependencies if id(d) in members} for u in self.units}
        self.dependents: dict[int, list[Unit]] = {}
        for unit in self.units:
            for dependency in self.waiting[id(unit)]:
                self.dependents.setdefault(dependency, []).append(unit)
        self.pending = {id(u) for u in self.units}
        self.ancestors: dict[int, set[int]] = {}
        for unit in self.units:
            self._ancestors_of(id(unit))

    def _ancestors_of(self, unit: int) -> set[int]:
        """Every member ``unit`` depends on, directly or through others (iteratively: chains may be long)."""
        stack = [unit]
        while stack:
            current = stack[-1]
            if current in self.ancestors:
                stack.pop()
                continue
            missing = [d for d in self.waiting[current] if d not in self.ancestors]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            self.ancestors[current] = set().union(*({d} | self.ancestors[d] for d in self.waiting[current]))
        return self.ancestors[unit]

    def ready(self) -> list[Unit]:
        """Units not yet started whose dependencies are done, in the execution's order."""
        return [u for u in self.units if id(u) in self.pending and not self.waiting[id(u)]]

    def waits_for_its_group(self, unit: Unit, ready: Sequence[Unit] | None = None) -> bool:
        """Whether a ready grouped unit should wait: another member of its group has not started and is not ready
        yet, and becomes ready without the group's ready members running (it needs none of them). Its group then
        runs as one call once that member is ready (one vLLM engine for every adapter, not one per adapter that
        happened to finish first); a member that needs the ready ones is not waited for."""
        if not unit.group:
            return False
        ready_members = {id(u) for u in (self.ready() if ready is None else ready) if u.group == unit.group}
        return any(member.group == unit.group and id(member) in self.pending and self.waiting[id(member)]
                   and not self.ancestors[id(member)] & ready_members for member in self.units)

    def next_ready(self) -> list[Unit]:
        """The ready units in the execution's order, those waiting for their group (:meth:`waits_for_its_group`)
        last."""
        ready = self.ready()
        return sorted(ready, key=lambda u: self.waits_for_its_group(u, ready))

    def take(self, unit: Unit) -> list[Unit]:
        """``unit`` and every other ready unit of its group, marked started."""
        batch = [unit] + ([u for u in self.ready() if u is not unit and u.group == unit.group] if unit.group else [])
        for member in batch:
            self.pending.discard(id(member))
        return batch

    def done(self, unit: Unit) -> None:
        for dependent in self.dependents.get(id(unit), ()):
            self.waiting[id(dependent)].discard(id(unit))

    def heights(self) -> dict[int, int]:
        """Per unit, the number of units on its longest chain of dependents (itself included)."""
        height: dict[int, int] = {}
        for unit in reversed(self.units):  # the units come in dependency order
            height[id(unit)] = 1 + max((height[id(d)] for d in self.dependents.get(id(unit), ())), default=0)
        return height


def perform(batch_actions: tuple[Callable | None, Callable | None], contexts: list[UnitContext],
            torch_threads: int | None = None) -> tuple[float, int]:
    """Run one unit (``action(context)``) or a group (``group_action(contexts)``); return the wall seconds and the
    CUDA devices it allocated on (a failure carries them as its ``cuda_devices``)."""
    action, group_action = batch_actions
    quiet_library_warnings()  # a Ray worker never ran the command line's main()
    cuda = CudaUse()
    try:
        with threads_held(torch_threads) if torch_threads is not None else contextlib.nullcontext(), cuda:
            began = time.perf_counter()
            if group_action is not None:
                group_action(contexts)
            else:
                action(contexts[0])
    except BaseException as exc:
        with contextlib.suppress(AttributeError, TypeError):  # some built-in exceptions take no attributes
            exc.cuda_devices = cuda.devices
        raise
    return time.perf_counter() - began, cuda.devices


def perform_in_a_fresh_process(batch_actions: tuple[Callable | None, Callable | None], contexts: list[UnitContext],
                               torch_threads: int | None = None) -> tuple[float, int]:
    """:func:`perform` as the Ray task of a unit that reserves GPUs, registered with ``max_calls=1``: its worker
    process ends after it, so the next GPU unit never inherits a CUDA context bound to another GPU, its allocator
    cache, cached reward models or a vLLM engine (Ray's one-process-per-GPU-task default applies only to a function
    declared with ``num_gpus``, not to ``num_gpus`` given per call)."""
    return perform(batch_actions, contexts, torch_threads)


def devices_of(error: BaseException | None) -> int | None:
    """The CUDA devices a failed unit had used, as :func:`perform` recorded them (None: not known)."""
    return getattr(error, "cuda_devices", None)


def kind_threads(execution: ExecutionConfig | None, kind: str) -> int | None:
    """The torch threads ``execution.resources`` gives a unit kind in this process (None: torch's own)."""
    return execution.resources_for(kind).torch_threads if execution else None


def _actions(batch: list[Unit]) -> tuple[Callable | None, Callable | None]:
    return batch[0].action, batch[0].group_action


def _starting(batch: list[Unit], start: Start, graph: ReadyGraph) -> list[Unit]:
    """The members that still need to run (``start`` says no for one produced meanwhile under another name)."""
    chosen = []
    for unit in batch:
        if start(unit):
            chosen.append(unit)
        else:
            graph.done(unit)
    return chosen


class LocalExecutor:
    """In this process; a unit kind's ``torch_threads``, when set in ``execution.resources``, holds while it runs."""

    def __init__(self, execution: ExecutionConfig | None = None):
        self.execution = execution

    def run(self, units: Sequence[Unit], context_of: Callable[[Unit], UnitContext], start: Start,
            finish: Finish) -> None:
        """``start(unit)`` returns False when the unit no longer needs to run (an earlier unit of this execution
        produced its key); ``finish`` records the outcome, and the first failure stops the execution."""
        graph = ReadyGraph(units)
        while ready := graph.next_ready():
            batch = _starting(graph.take(ready[0]), start, graph)
            if not batch:
                continue
            threads = kind_threads(self.execution, batch[0].kind)
            began = time.perf_counter()
            try:
                _, devices = perform(_actions(batch), [context_of(u) for u in batch], threads)
            except BaseException as exc:
                for unit in batch:
                    finish(unit, (time.perf_counter() - began) / len(batch), exc, devices_of(exc))
                raise
            for unit in batch:
                finish(unit, (time.perf_counter() - began) / len(batch), None, devices)
                graph.done(unit)


class RayExecutor:
    """Units as Ray tasks, each with the CPUs, GPUs and torch threads ``execution.resources`` gives its kind."""

    def __init__(self, execution: ExecutionConfig, log: Callable[[str], None] = print):
        self.execution = execution
        self.log = log

    def connect(self):
        try:
            import ray
        except ImportError:
            raise UserError("execution.executor is 'ray' but Ray is not installed: pip install 'paretohqd[ray]'") \
                from None
        if not ray.is_initialized():
            e = self.execution
            if e.ray_address:
                _check_reachable(e.ray_address)
                if "RAY_AUTH_MODE" not in os.environ and RAY_TOKEN.exists():
                    # `ray start` turns token authentication on when this token exists, and a client that does not
                    # present it is refused (for minutes of retries) as if no cluster were there.
                    os.environ["RAY_AUTH_MODE"] = "token"
                try:
                    ray.init(address=e.ray_address, log_to_driver=True)
                except ConnectionError as exc:
                    raise UserError(f"execution.ray_address {e.ray_address!r}: no Ray cluster there ({exc}; a cluster "
                                    "with token authentication needs RAY_AUTH_MODE=token and its token)") from None
            else:
                # A local cluster's workers import what this process imports (tests, user objectives).
                path = os.pathsep.join(p for p in sys.path if p)
                # "local": a new cluster of this run's own, even where `ray start` runs one that ray.init() would
                # otherwise join (and refuse num_cpus for).
                ray.init(address="local", num_cpus=e.ray_num_cpus, num_gpus=e.ray_num_gpus, include_dashboard=False,
                         log_to_driver=True, object_store_memory=256 * 2**20,
                         runtime_env={"env_vars": {"PYTHONPATH": path}})
        return ray

    def run(self, units: Sequence[Unit], context_of: Callable[[Unit], UnitContext], start: Start,
            finish: Finish) -> None:
        if not units:
            return
        ray = self.connect()
        capacity = ray.cluster_resources()
        total = {"CPU": capacity.get("CPU", 0.0), "GPU": capacity.get("GPU", 0.0)}
        for kind in dict.fromkeys(u.kind for u in units):
            need = self.execution.resources_for(kind)
            for resource, amount in (("CPU", need.num_cpus), ("GPU", need.num_gpus)):
                if amount > total[resource] + 1e-9:
                    raise UserError(f"execution.resources for '{kind}' units asks for {amount:g} {resource} but "
                                    f"the Ray cluster has {total[resource]:g}")
        remote = ray.remote(perform)
        fresh = ray.remote(max_calls=1)(perform_in_a_fresh_process)
        graph = ReadyGraph(units)
        height = graph.heights()
        used = {"CPU": 0.0, "GPU": 0.0}
        running: dict = {}  # object ref -> (batch, resources, dispatch time)
        failure: BaseException | None = None

        def fits(need: UnitResources) -> bool:
            return (used["CPU"] + need.num_cpus <= total["CPU"] + 1e-9 and
                    used["GPU"] + need.num_gpus <= total["GPU"] + 1e-9) or not running

        def dispatch() -> bool:
            """Hand Ray what fits, most important first; True if any unit left the ready set."""
            progressed = False
            ready = graph.ready()
            for unit in sorted(ready, key=lambda u: (-height[id(u)], graph.position[id(u)])):
                if id(unit) not in graph.pending:
                    continue  # taken with its group
                if running and graph.waits_for_its_group(unit, ready):
                    continue  # its group runs as one call once the member it waits for is ready
                need = self.execution.resources_for(unit.kind)
                if not fits(need):
                    continue
                progressed = True
                batch = _starting(graph.take(unit), start, graph)
                if batch:
                    threads = need.torch_threads or max(1, int(need.num_cpus))
                    task = fresh if need.num_gpus > 0 else remote
                    ref = task.options(num_cpus=need.num_cpus, num_gpus=need.num_gpus,
                                         max_retries=self.execution.max_retries, retry_exceptions=False,
                                         name=batch[0].name).remote(
                        _actions(batch), [_on_worker(context_of(u)) for u in batch], threads)
                    running[ref] = (batch, need, time.perf_counter())
                    used["CPU"] += need.num_cpus
                    used["GPU"] += need.num_gpus
            return progressed

        while True:
            while failure is None and dispatch():
                pass
            if not running:
                break
            finished, _ = ray.wait(list(running), num_returns=1)
            for ref in finished:
                batch, need, began = running.pop(ref)
                used["CPU"] -= need.num_cpus
                used["GPU"] -= need.num_gpus
                error: BaseException | None = None
                try:
                    seconds, devices = ray.get(ref)
                except BaseException as exc:  # noqa: BLE001 - every failure is recorded, the first re-raised
                    error, seconds = _cause(exc, batch[0], self.execution.max_retries), time.perf_counter() - began
                    devices = devices_of(error)
                for unit in batch:
                    finish(unit, seconds / len(batch), error, devices)
                    if error is None:
                        graph.done(unit)
                if error is not None and failure is None:
                    failure = error
                    if running:
                        self.log(f"{batch[0].name} failed; waiting for the {len(running)} running unit(s) to end")
        if failure is not None:
            raise failure
        if graph.pending:
            raise RuntimeError(f"{len(graph.pending)} units never became ready (a dependency outside the execution)")


def _check_reachable(address: str, seconds: float = 5.0) -> None:
    """A 'host:port' with no cluster behind it fails in seconds (ray.init would retry for minutes)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # 'auto' and other forms: ray.init says itself what is wrong
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as exc:
        raise UserError(f"execution.ray_address {address!r}: no Ray cluster answers there ({exc.strerror or exc}); "
                        "start one with `ray start --head` or leave ray_address empty for a local one") from None


def worker_log(message: str) -> None:
    """A unit's log line in a Ray worker; Ray forwards the worker's output to the driver's terminal."""
    print(message, flush=True)


def _on_worker(context: UnitContext) -> UnitContext:
    """The context a Ray worker runs with: its log prints there (and still goes to the unit's file)."""
    log = context.log.echoing(worker_log) if isinstance(context.log, UnitLog) else worker_log
    return dataclasses.replace(context, log=log)


def _cause(exc: BaseException, unit: Unit, retries: int) -> BaseException:
    """The exception the unit raised in its worker, or one sentence for a worker that died."""
    import ray.exceptions

    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            return cause
    if isinstance(exc, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                        ray.exceptions.OutOfMemoryError)):
        return UserError(f"unit {unit.name}: its Ray worker died and was retried {retries} time(s) without success "
                         f"({type(exc).__name__}); finished units are kept, run again to resume")
    return exc


def ray_installed() -> bool:
    """Whether the Ray extra is installed (looked up, not imported: importing Ray takes seconds)."""
    return importlib.util.find_spec("ray") is not None


def make_executor(execution: ExecutionConfig, log: Callable[[str], None] = print):
    if execution.executor == "ray":
        return RayExecutor(execution, log)
    return LocalExecutor(execution)
