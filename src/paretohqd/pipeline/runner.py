"""One mechanism decides, for every unit, whether it runs, is skipped or is reused, and records the outcome.

Pull semantics: to produce the targets, a target whose key is recorded as done (with its outputs present) is
skipped without looking further upstream; otherwise its dependencies are produced first. A unit whose key was
produced under another name in this run directory (a preference that moved in the grid) gets those outputs by hard
links instead of being recomputed. Before any work starts every needed unit's own checks run, so bad settings fail
in seconds rather than after hours. The manifest is written atomically after every change.

Cost: each unit's entry keeps its wall seconds over every recorded attempt (a failed attempt's seconds carry over
to the next; an attempt killed outright, kill -9, is lost), the CUDA devices it held and its GPU-seconds (wall x
devices). A content-addressed unit (a score shard in a cache several runs share) also gets those numbers in a
sidecar beside its first output, ``<output>.cost.json``, so that a run finding it cached can still count what it
cost, the same for every run.
"""

from __future__ import annotations

import heapq
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .. import io
from .executors import LocalExecutor, RayExecutor
from .rundir import COST_SIDECAR, RunDir, cuda_devices_in_use
from .units import Unit, UnitContext


@dataclass
class Execution:
    ran: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)


class Runner:
    def __init__(self, run: RunDir, log: Callable[[str], None] = print, executor=None, main_process: bool = True):
        self.run = run
        self.log = log
        self.executor = executor or LocalExecutor()
        # False on the other processes of a multi-process launch: they run their shares of the units rank 0
        # starts, and write no manifest, reuse link or prune deletion (rank 0 does, once).
        self.main_process = main_process
        self.manifest = run.manifest()

    # ---------------------------------------------------------------------------------------------------- state

    def outputs_exist(self, paths: Iterable[str]) -> bool:
        return all(self.run.resolve(path).exists() for path in paths)

    def is_done(self, unit: Unit) -> bool:
        if unit.content_addressed:
            return self.outputs_exist(unit.output_paths)
        entry = self.manifest["units"].get(unit.name)
        return bool(entry) and entry.get("status") == "done" and entry.get("key") == unit.key \
            and self.outputs_exist(unit.output_paths)

    def donor(self, unit: Unit) -> tuple[str, dict] | None:
        """A finished entry of another name with this unit's key and all its outputs."""
        for name, entry in self.manifest["units"].items():
            if name != unit.name and entry.get("key") == unit.key and entry.get("status") == "done" \
                    and len(entry.get("outputs", ())) == len(unit.output_paths) \
                    and self.outputs_exist(entry["outputs"]):
                return name, entry
        return None

    # ---------------------------------------------------------------------------------------------------- plan

    def plan(self, targets: Sequence[Unit], force: Iterable[str] = (),
             declared: Sequence[Unit] = ()) -> tuple[list[Unit], list[tuple[Unit, str]]]:
        """(units to run in dependency order, (unit, donor name) pairs to reuse). Among the units ready to run, the
        one declared first goes first: scoring, then every stage-1 model, then stage 2, and so on."""
        force = set(force)
        visited: set[str] = set()
        order: list[Unit] = []
        reuse: list[tuple[Unit, str]] = []

        def visit(unit: Unit, path: tuple[str, ...]) -> None:
            if unit.name in path:
                raise RuntimeError(f"units depend on each other in a cycle: {' -> '.join(path + (unit.name,))}")
            if unit.name in visited:
                return
            visited.add(unit.name)
            if unit.name not in force and self.is_done(unit):
                return
            found = None if unit.name in force or unit.content_addressed else self.donor(unit)
            if found is not None:
                reuse.append((unit, found[0]))
                return
            for dependency in unit.dependencies:
                visit(dependency, path + (unit.name,))
            order.append(unit)

        for target in targets:
            visit(target, ())
        return _declaration_order(order, [*declared, *targets]), reuse

    # ---------------------------------------------------------------------------------------------------- run

    def execute(self, targets: Sequence[Unit], force: Iterable[str] = (), stages: Sequence[str] = (),
                declared: Sequence[Unit] = ()) -> Execution:
        everything = closure(targets)
        duplicates = sorted(name for name, count in Counter(u.name for u in everything).items() if count > 1)
        if duplicates:
            raise RuntimeError(f"two different units share the name {duplicates[0]!r}")
        order, reuse = self.plan(targets, force, declared)
        for unit in order:
            if unit.check is not None:
                unit.check()
        execution = Execution(reused=[unit.name for unit, _ in reuse])
        self._reuse(reuse)
        running = {unit.stage for unit in order}
        for stage in stages or dict.fromkeys(u.stage for u in everything):
            if stage not in running:
                self.log(f"{stage}: done already")

        def start(unit: Unit) -> bool:
            found = None if unit.content_addressed else self.donor(unit)
            if found is not None and unit.name not in set(force):
                self._reuse([(unit, found[0])])
                execution.reused.append(unit.name)
                return False
            previous = self.manifest["units"].get(unit.name, {})
            resumed = previous.get("key") == unit.key and previous.get("status") != "done"
            self.manifest["units"][unit.name] = {
                "key": unit.key, "kind": unit.kind, "stage": unit.stage, "status": "running", "started": time.time(),
                "outputs": list(unit.output_paths),
                "wall_seconds": previous.get("wall_seconds", 0.0) if resumed else 0.0,
                "gpu_seconds": previous.get("gpu_seconds", 0.0) if resumed else 0.0,
                "attempts": previous.get("attempts", 1) + 1 if resumed else 1}
            self._write_manifest()
            return True

        def finish(unit: Unit, seconds: float, error: BaseException | None) -> None:
            entry = self.manifest["units"][unit.name]
            devices = self.devices(unit)
            entry["wall_seconds"] = entry.get("wall_seconds", 0.0) + seconds
            entry["cuda_devices"] = devices
            entry["gpu_seconds"] = entry.get("gpu_seconds", 0.0) + seconds * devices
            entry["finished"] = time.time()
            if error is None:
                entry["status"] = "done"
                execution.ran.append(unit.name)
                if unit.content_addressed and self.main_process:
                    self._write_cost_sidecar(unit, entry)
            else:
                entry["status"] = "failed"
                entry["error"] = f"{type(error).__name__}: {error}".splitlines()[0][:500]
            self._write_manifest()

        self.executor.run(order, self.context, start, finish)
        return execution

    def devices(self, unit: Unit) -> float:
        """The CUDA devices ``unit`` held while it ran: on Ray the GPUs its kind reserves (Ray hides the others
        from it); in a multi-process launch one per process once CUDA is in use; in this process
        ``torch.cuda.device_count()`` once CUDA is in use here (a unit ran on cuda), 0 on the CPU."""
        if isinstance(self.executor, RayExecutor):
            return float(self.executor.execution.resources_for(unit.kind).num_gpus)
        return float(cuda_devices_in_use(getattr(self.executor, "world_size", 1)))

    def _write_cost_sidecar(self, unit: Unit, entry: dict) -> None:
        path = self.run.resolve(unit.output_paths[0])
        io.write_json(path.with_name(path.name + COST_SIDECAR),
                      {"unit": unit.name, "kind": unit.kind, "key": unit.key, "wall_seconds": entry["wall_seconds"],
                       "gpu_seconds": entry["gpu_seconds"], "cuda_devices": entry["cuda_devices"],
                       "attempts": entry.get("attempts", 1), "finished": entry["finished"]})

    def _write_manifest(self) -> None:
        if self.main_process:
            self.run.write_manifest(self.manifest)

    def context(self, unit: Unit) -> UnitContext:
        return UnitContext(
            name=unit.name, settings=unit.settings, options=unit.options,
            inputs={role: [self.run.resolve(p) for p in up.output_paths]
                    for role, up in {**unit.after, **unit.upstream}.items()},
            outputs=[self.run.resolve(p) for p in unit.output_paths], log=self.log)

    def _reuse(self, pairs: list[tuple[Unit, str]]) -> None:
        """Stage every donor's outputs first (hard links), then move them into place: a donor may sit where
        another reused unit goes."""
        if not self.main_process:
            return
        staged = []
        for unit, donor in pairs:
            entry = self.manifest["units"][donor]
            copies = []
            for source, target in zip(entry["outputs"], unit.output_paths):
                target_path = self.run.resolve(target)
                temporary = target_path.with_name(f".{target_path.name}.reuse{os.getpid()}")
                _remove(temporary)
                io.link_or_copy(self.run.resolve(source), temporary)
                copies.append((temporary, target_path))
            staged.append((unit, donor, dict(entry), copies))
        for unit, donor, entry, copies in staged:
            for temporary, target in copies:
                _remove(target)
                os.replace(temporary, target)
            entry.update(outputs=list(unit.output_paths), reused_from=donor, stage=unit.stage)
            self.manifest["units"][unit.name] = entry
            self._write_manifest()
            self.log(f"{unit.name}: the same as {donor}, reused")

    def prune(self, plan: Sequence[Unit]) -> list[str]:
        """Forget units that are no longer in the plan, and delete their outputs inside the run directory."""
        if not self.main_process:
            return []
        keep_names = {unit.name for unit in plan}
        keep_paths = {self.run.resolve(p) for unit in plan for p in unit.output_paths}
        removed = []
        for name in [n for n in self.manifest["units"] if n not in keep_names]:
            for path in self.manifest["units"][name].get("outputs", ()):
                resolved = self.run.resolve(path)
                if resolved not in keep_paths and _inside(resolved, self.run.path):
                    _remove(resolved)
            del self.manifest["units"][name]
            removed.append(name)
        if removed:
            self._write_manifest()
        return removed


def _declaration_order(units: list[Unit], declared: Sequence[Unit]) -> list[Unit]:
    """A topological order of ``units`` that prefers, among the ready ones, the one declared first."""
    rank = {}
    for index, unit in enumerate(declared):
        rank.setdefault(id(unit), index)
    chosen = {id(u) for u in units}
    waiting = {id(u): {id(d) for d in u.dependencies if id(d) in chosen} for u in units}
    by_id = {id(u): u for u in units}
    dependents: dict[int, list[int]] = {}
    for unit in units:
        for dependency in waiting[id(unit)]:
            dependents.setdefault(dependency, []).append(id(unit))
    position = {id(u): i for i, u in enumerate(units)}  # the depth-first order breaks ties

    def priority(key: int) -> tuple[int, int]:
        return rank.get(key, len(declared)), position[key]

    ready = [(priority(k), k) for k, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    ordered = []
    while ready:
        _, key = heapq.heappop(ready)
        ordered.append(by_id[key])
        for dependent in dependents.get(key, ()):
            waiting[dependent].discard(key)
            if not waiting[dependent]:
                heapq.heappush(ready, (priority(dependent), dependent))
    return ordered


def closure(targets: Sequence[Unit]) -> list[Unit]:
    """The targets and every unit they depend on, each once."""
    seen: dict[int, Unit] = {}

    def visit(unit: Unit) -> None:
        if id(unit) in seen:
            return
        seen[id(unit)] = unit
        for dependency in unit.dependencies:
            visit(dependency)

    for target in targets:
        visit(target)
    return list(seen.values())


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
