"""One plan over the processes of a multi-process launch (``accelerate launch``, ``torchrun``): one large unit at a
time, shared by every process.

Every process builds the same plan; :class:`DistributedExecutor` walks its units in the same order on each. For
every unit rank 0 asks the runner whether it must run (``start``, which writes the manifest) and tells the others;
units that know how to share their work (:data:`SHARED_KINDS`: training, score shards, generation, scoring of
generated text) run on every process, each doing its share (``UnitContext.rank`` of ``world_size``; the Trainer's
data-parallel training, batches dealt out in turn for scoring and generation) and rank 0 writing the result; every
other unit runs on rank 0 while the others wait. After each unit the processes agree on its outcome: a failure on
any rank is learnt by all, recorded by rank 0 (``finish``), and every process stops with the same sentence.

The processes talk over a process group of their own (gloo, on the CPU) with a long timeout, apart from the one the
Trainer trains over (NCCL on GPUs): a unit that rank 0 runs alone for an hour does not time the others out.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from ..config import ExecutionConfig
from ..errors import UserError
from .executors import Finish, ReadyGraph, Start, devices_of, kind_threads, perform
from .units import Unit, UnitContext

SHARED_KINDS = frozenset({"sft", "dpo", "rloo", "score_shard", "generate", "score_generated"})
"""Unit kinds whose actions share their work by ``UnitContext.rank`` (and write only on rank 0). A unit that runs
as a group (one vLLM engine for several adapters) runs on rank 0 alone: the engine shares the GPUs its own way."""
CONTROL_TIMEOUT = timedelta(hours=24)
"""How long a process waits for the others (the longest unit that rank 0 runs alone: an evaluation, a merge)."""


def launched_world() -> tuple[int, int]:
    """(rank, world_size) as the launcher set them; (0, 1) outside a multi-process launch."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True outside a launch and on rank 0: the one process that writes the run directory and speaks."""
    return launched_world()[0] == 0


def distributed_executor(units: Sequence[Unit], execution: ExecutionConfig | None = None
                         ) -> DistributedExecutor | None:
    """The executor of a multi-process launch (WORLD_SIZE > 1), or None outside one. ``units``: every unit of
    the plan, for the other ranks to find the ones rank 0 says to run; ``execution``: a unit kind's
    ``torch_threads`` holds while it runs, as in a local run."""
    if launched_world()[1] <= 1:
        return None
    if execution is not None and execution.executor != "local":
        raise UserError(f"execution.executor is '{execution.executor}' but this process is one of a multi-process "
                        "launch (accelerate launch or torchrun): use one or the other, not both")
    return DistributedExecutor(units, execution=execution)


@dataclasses.dataclass(frozen=True)
class Failure:
    """A unit's failure on one process, as it travels to the others."""

    rank: int
    kind: str
    """``user`` (a UserError: its sentence), ``interrupt``, ``peer`` (learnt from another process in a gather) or
    ``error`` (anything else: type and first line)."""
    text: str


class PeerFailed(Exception):
    """Raised inside a unit's ``gather`` when another process failed in that unit instead of reaching it."""

    def __init__(self, failure: Failure):
        super().__init__(failure.text)
        self.failure = failure


class UnitFailed(RuntimeError):
    """A unit failed on some process of a launch (not a UserError): every process raises this same sentence."""


def _failure(exc: BaseException | None, rank: int) -> Failure | None:
    if exc is None:
        return None
    if isinstance(exc, PeerFailed):
        return Failure(rank, "peer", exc.failure.text)
    if isinstance(exc, UserError):
        return Failure(rank, "user", str(exc))
    if isinstance(exc, KeyboardInterrupt):
        return Failure(rank, "interrupt", "interrupted")
    return Failure(rank, "error", f"{type(exc).__name__}: {exc}".splitlines()[0][:500])


def agreed_failure(outcomes: Sequence[Failure | None], unit_name: str) -> BaseException | None:
    """The one exception every process raises for these outcomes: the lowest rank's own failure (not one it only
    learnt from another), or None when every process succeeded."""
    failures = [f for f in outcomes if f is not None]
    if not failures:
        return None
    first = next((f for f in failures if f.kind != "peer"), failures[0])
    if first.kind == "user":
        return UserError(first.text)
    if first.kind == "interrupt":
        return KeyboardInterrupt()
    return UnitFailed(f"unit {unit_name} failed on rank {first.rank}: {first.text}")


_GATHER, _OUTCOME = "gather", "outcome"


def _close_process_groups() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


class Collective:
    """The messages of one launch's processes: rank 0's decisions, the shares a unit gathers, and each unit's
    outcome, over a gloo process group of their own (created here, by every process at once)."""

    def __init__(self):
        import torch
        import torch.distributed as dist
        from accelerate import PartialState
        from accelerate.utils import parse_flag_from_env

        if not dist.is_initialized():
            # As the Trainer will: NCCL (or DeepSpeed's) on GPUs, gloo when the launch says CPU or there is no GPU.
            PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.group = dist.new_group(backend="gloo", timeout=CONTROL_TIMEOUT)
        # Groups left to the interpreter's teardown can abort the process as it exits ("terminate called without an
        # active exception"), turning a finished run into a failed launch.
        atexit.register(_close_process_groups)

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value``, on every process."""
        import torch.distributed as dist

        box = [value if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def _all_gather(self, message: tuple[str, Any]) -> list[tuple[str, Any]]:
        import torch.distributed as dist

        messages: list = [None] * self.world_size
        dist.all_gather_object(messages, message, group=self.group)
        return messages

    def gather(self, value: Any) -> list:
        """Every process's ``value`` in rank order, on every process: ``UnitContext.gather`` of a shared unit.

        A process that failed in the unit sends its outcome instead; then this raises :class:`PeerFailed`, so
        that no process waits for a share that will never come."""
        messages = self._all_gather((_GATHER, value))
        for rank, (tag, payload) in enumerate(messages):
            if tag == _OUTCOME:
                raise PeerFailed(payload or Failure(rank, "error", f"rank {rank} finished the unit without "
                                                                     "gathering its share"))
        return [payload for _, payload in messages]

    def agree(self, failure: Failure | None) -> list[Failure | None]:
        """Every process's outcome of one unit, on every process. A process that is still inside a gather of the
        unit receives this outcome there, raises PeerFailed and then sends its own outcome: until every message is
        an outcome, ask again."""
        while True:
            messages = self._all_gather((_OUTCOME, failure))
            if all(tag == _OUTCOME for tag, _ in messages):
                return [payload for _, payload in messages]


class DistributedExecutor:
    """Runs an execution's units on every process of a launch, in rank 0's order (see the module's text)."""

    def __init__(self, units: Sequence[Unit], collective: Collective | None = None,
                 execution: ExecutionConfig | None = None):
        self.by_name = {unit.name: unit for unit in units}
        self.execution = execution
        self.collective = collective or Collective()
        self.rank, self.world_size = self.collective.rank, self.collective.world_size

    @property
    def main_process(self) -> bool:
        return self.rank == 0

    def shared(self, batch: Sequence[Unit]) -> bool:
        """Whether every process runs this batch (each its share) or rank 0 alone."""
        return batch[0].group_action is None and batch[0].kind in SHARED_KINDS

    def run(self, units: Sequence[Unit], context_of: Callable[[Unit], UnitContext], start: Start,
            finish: Finish) -> None:
        graph = ReadyGraph(self._agreed_order(units))
        while ready := graph.next_ready():
            batch = graph.take(ready[0])
            chosen = []
            for unit, runs in zip(batch, self._on_main(lambda: [start(u) for u in batch], batch[0].name)):  # noqa: B023
                if runs:
                    chosen.append(unit)
                else:
                    graph.done(unit)  # produced meanwhile under another name: rank 0 reused it
            if not chosen:
                continue
            shared = self.shared(chosen)
            began = time.perf_counter()
            own: BaseException | None = None
            used: int | None = None
            if shared or self.main_process:
                try:
                    _, used = perform((chosen[0].action, chosen[0].group_action),
                                      [self._context(context_of(unit), shared) for unit in chosen],
                                      kind_threads(self.execution, chosen[0].kind))
                except BaseException as exc:  # noqa: BLE001 - every process must hear of it before anyone stops
                    own, used = exc, devices_of(exc)
            failure = agreed_failure(self.collective.agree(_failure(own, self.rank)), chosen[0].name)
            seconds = (time.perf_counter() - began) / len(chosen)
            # Rank 0 speaks for the launch: a unit every process ran used as many devices on each.
            devices = None if used is None else used * (self.world_size if shared else 1)
            # the lambdas run within this pass of the loop (on the main process, now): B023's late binding is moot
            self._on_main(lambda: [finish(unit, seconds, failure, devices) for unit in chosen],  # noqa: B023
                          chosen[0].name)
            if failure is not None:
                raise failure from (own if own is not None and not isinstance(own, PeerFailed) else None)
            for unit in chosen:
                graph.done(unit)

    def _context(self, context: UnitContext, shared: bool) -> UnitContext:
        if not shared:
            return context  # rank 0 alone: a world of one
        return dataclasses.replace(context, rank=self.rank, world_size=self.world_size,
                                   gather=self.collective.gather)

    def _on_main(self, work: Callable[[], Any], unit_name: str) -> Any:
        """``work()`` on rank 0 (the runner's bookkeeping), its result on every process; if it fails, every process
        raises the same exception."""
        result, error = None, None
        if self.main_process:
            try:
                result = work()
            except BaseException as exc:  # noqa: BLE001 - the others wait for this broadcast
                error = exc
        result, failure = self.collective.broadcast((result, _failure(error, self.rank)))
        if failure is not None:
            raise agreed_failure([failure], unit_name) from error
        return result

    def _agreed_order(self, units: Sequence[Unit]) -> list[Unit]:
        """Rank 0's units to run, in its order, on every process: rank 0 alone reads the manifest as it is now
        (it may already have reused outputs), so its decision is the one that counts. A process whose plan lacks
        one of them, or keys it differently, read another config or other data."""
        order = self.collective.broadcast([(unit.name, unit.key) for unit in units])
        mine, problem = [], None
        for name, key in order:
            unit = self.by_name.get(name)
            if unit is None or unit.key != key:
                problem = Failure(self.rank, "user", f"rank {self.rank} planned a different run than rank 0 (unit "
                                                     f"{name} {'is missing' if unit is None else 'has another key'}): "
                                                     "every process must read the same config and data")
                break
            mine.append(unit)
        failure = agreed_failure(self.collective.agree(problem), "plan")
        if failure is not None:
            raise failure
        return mine
