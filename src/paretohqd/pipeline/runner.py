"""One mechanism decides, for every unit, whether it runs, is skipped or is reused, and records the outcome.

Pull semantics: to produce the targets, a target whose key is recorded as done (with its outputs present) is
skipped without looking further upstream; otherwise its dependencies are produced first. A unit whose key was
produced under another name in this run directory (a preference that moved in the grid) gets those outputs by hard
links instead of being recomputed. Before any work starts every needed unit's own checks run, so bad settings fail
in seconds rather than after hours. The manifest is written atomically after every change.

Cost: each unit's entry keeps its wall seconds over every attempt (a failed attempt's seconds carry over to the
next; an attempt killed outright, kill -9, counts up to its last heartbeat, see :class:`Heartbeat`), the CUDA
devices it allocated memory on and its GPU-seconds (wall x those devices: a unit that never touched CUDA costs no
GPU time, whatever the machine has). A content-addressed unit (a score shard in a cache several
runs share) also gets those numbers in a sidecar beside its first output, ``<output>.cost.json``, so that a run
finding it cached can still count what it cost, the same for every run.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import io
from ..errors import UserError
from .executors import LocalExecutor, RayExecutor
from .rundir import COST_SIDECAR, RunDir, unit_log_file
from .units import Unit, UnitContext, UnitLog


class HeldWhileRunning:
    """A lock held while at least one of some units runs: taken when the first starts, released when the last of
    those running ends, and released at the end of the ``with`` block whatever happened."""

    def __init__(self, claim: Callable[[], contextlib.AbstractContextManager] | None):
        self.claim = claim
        self.running = 0
        self.held = contextlib.ExitStack()

    def begin(self) -> None:
        if self.claim is not None and self.running == 0:
            self.held.enter_context(self.claim())
        self.running += 1

    def end(self) -> None:
        self.running -= 1
        if self.running == 0:
            self.held.close()

    def __enter__(self) -> HeldWhileRunning:
        return self

    def __exit__(self, *exc) -> None:
        self.running = 0
        self.held.close()


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
        """Its key is recorded as done, its outputs are there as it left them, and what it read is as it was: an
        output edited or replaced since (a generation file, a model) makes the unit run again, and so does an input
        that changed under a finished unit (see :meth:`stamp`)."""
        if unit.content_addressed:
            return self.outputs_exist(unit.output_paths)
        entry = self.manifest["units"].get(unit.name)
        if not (entry and entry.get("status") == "done" and entry.get("key") == unit.key
                and self.outputs_exist(unit.output_paths)):
            return False
        if "stamp" in entry and not self._unchanged(entry["stamp"], unit.output_paths, all_there=True):
            return False
        # An input deleted since is no change (pull semantics: a finished unit needs no upstream), nor is one whose
        # unit is not in place under its name yet (it moved in the grid: the same key, reused from its donor).
        in_place = {name: path for name, path in self.input_paths(unit).items()
                    if self._in_place(self._upstream_of(unit, name))}
        # A recorded name is ``role[i]``, or ``role[i]/file`` inside a folder; a role may hold "/" itself
        # (the report's ``select/summary:pool``), so the input is everything up to the first "]".
        recorded = {name: stamp for name, stamp in entry.get("input_stamp", {}).items()
                    if name[:name.find("]") + 1] in in_place}
        return self._unchanged(recorded, in_place, all_there=False)

    def _upstream_of(self, unit: Unit, input_name: str) -> Unit:
        return {**unit.after, **unit.upstream}[input_name.split("[", 1)[0]]

    def _in_place(self, unit: Unit) -> bool:
        entry = self.manifest["units"].get(unit.name, {})
        return unit.content_addressed or entry.get("key") == unit.key

    def input_paths(self, unit: Unit) -> dict[str, str]:
        """What ``unit`` reads, named by role (a unit reused under another name reads the same content from other
        paths)."""
        return {f"{role}[{index}]": path for role, up in sorted({**unit.after, **unit.upstream}.items())
                for index, path in enumerate(up.output_paths)}

    def _files(self, paths: Iterable[str] | dict[str, str]) -> dict[str, Path]:
        named = paths if isinstance(paths, dict) else {path: path for path in paths}
        files: dict[str, Path] = {}
        for name, path in named.items():
            resolved = self.run.resolve(path)
            if resolved.is_dir():
                for file in sorted(f for f in resolved.rglob("*") if f.is_file()):
                    files[f"{name}/{file.relative_to(resolved).as_posix()}"] = file
            elif resolved.is_file():
                files[name] = resolved
        return files

    def stamp(self, paths: Iterable[str] | dict[str, str]) -> dict[str, list]:
        """Every file of ``paths`` (folders walked), by path: [size, modification time in ns, a fast digest of its
        bytes (:func:`~paretohqd.io.file_stamp_digest`)]. A file whose time moved but whose bytes are the same (made
        again identically, a run directory copied with ``cp -r`` or moved) is unchanged, whatever its size."""
        stamps = {}
        for name, file in self._files(paths).items():
            info = file.stat()
            stamps[name] = [info.st_size, info.st_mtime_ns, io.file_stamp_digest(file)]
        return stamps

    def _unchanged(self, recorded: dict[str, list], paths: Iterable[str] | dict[str, str], all_there: bool) -> bool:
        now = self._files(paths)
        if set(now) - set(recorded) or (all_there and set(recorded) - set(now)):
            return False
        for name, file in now.items():
            size, mtime, digest = ([*list(recorded[name]), None])[:3]
            info = file.stat()
            if info.st_size != size:
                return False
            # The time alone decides nothing: only bytes that differ from what was recorded make a unit rerun.
            if info.st_mtime_ns != mtime and (digest is None or not io.same_bytes(file, digest)):
                return False
        return True

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
                raise RuntimeError(f"units depend on each other in a cycle: {' -> '.join((*path, unit.name))}")
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
                visit(dependency, (*path, unit.name))
            order.append(unit)

        for target in targets:
            visit(target, ())
        return _declaration_order(order, [*declared, *targets]), reuse

    # ---------------------------------------------------------------------------------------------------- run

    def execute(self, targets: Sequence[Unit], force: Iterable[str] = (), stages: Sequence[str] = (),
                declared: Sequence[Unit] = (), prepare: Callable[[list[Unit]], None] | None = None,
                claim_shared: Callable[[], contextlib.AbstractContextManager] | None = None) -> Execution:
        """Run what ``targets`` need; ``prepare(units to run)`` is called once every unit's check has passed, before
        any work (it writes the run directory's resolved config: a run refused by a check leaves nothing behind).
        ``claim_shared()`` (the shared score cache's lock) is held while content-addressed units run, and only
        then: other runs that share the cache wait for this run's scoring, not for the whole run."""
        everything = closure(targets)
        duplicates = sorted(name for name, count in Counter(u.name for u in everything).items() if count > 1)
        if duplicates:
            raise RuntimeError(f"two different units share the name {duplicates[0]!r}")
        order, reuse = self.plan(targets, force, declared)
        for unit in order:
            if unit.check is not None:
                unit.check()
        if prepare is not None:
            prepare(order)
        heartbeat = Heartbeat(self.run.path / HEARTBEAT_FOLDER, self.main_process)
        heartbeat.check()
        shared = HeldWhileRunning(claim_shared)
        self._settle_killed(everything, heartbeat)
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
            if unit.content_addressed:
                shared.begin()  # before the unit is marked running: a refusal leaves the manifest as it was
            previous = self.manifest["units"].get(unit.name, {})
            resumed = previous.get("key") == unit.key and previous.get("status") != "done"
            killed = heartbeat.lost_seconds(unit.name, previous) if resumed else 0.0
            started = time.time()
            self.manifest["units"][unit.name] = {
                "key": unit.key, "kind": unit.kind, "stage": unit.stage, "status": "running", "started": started,
                "outputs": list(unit.output_paths),
                "wall_seconds": previous.get("wall_seconds", 0.0) + killed if resumed else 0.0,
                "gpu_seconds": previous.get("gpu_seconds", 0.0) + killed * previous.get("cuda_devices", 0.0)
                if resumed else 0.0,
                "attempts": previous.get("attempts", 1) + 1 if resumed else 1}
            self._write_manifest()
            self._clear_leftovers(unit)
            heartbeat.begin(unit.name, started)
            self.note(unit, f"started (attempt {self.manifest['units'][unit.name]['attempts']}, key {unit.key})")
            return True

        def finish(unit: Unit, seconds: float, error: BaseException | None, used: float | None = None) -> None:
            entry = self.manifest["units"][unit.name]
            devices = float(used) if used is not None else self.devices(unit)
            entry["wall_seconds"] = entry.get("wall_seconds", 0.0) + seconds
            entry["cuda_devices"] = devices
            entry["gpu_seconds"] = entry.get("gpu_seconds", 0.0) + seconds * devices
            entry["finished"] = time.time()
            heartbeat.end(unit.name)
            if error is None:
                entry["status"] = "done"
                if self.main_process:
                    entry["stamp"] = self.stamp(unit.output_paths)
                    entry["input_stamp"] = self.stamp(self.input_paths(unit))
                execution.ran.append(unit.name)
                if unit.content_addressed and self.main_process:
                    self._write_cost_sidecar(unit, entry)
            else:
                entry["status"] = "failed"
                entry["error"] = f"{type(error).__name__}: {error}".splitlines()[0][:500]
                self._clear_leftovers(unit)
            self._write_manifest()
            self.note(unit, f"done in {seconds:.1f} s" if error is None
                      else f"failed after {seconds:.1f} s: {entry['error']}")
            if unit.content_addressed:
                shared.end()

        with heartbeat, shared:
            self.executor.run(order, self.context, start, finish)
            # A finished unit whose inputs the units just run made with other bytes (an evaluation's timings, a
            # regenerated file that had been edited) is out of date now: run those too, until none is. (In a launch
            # of several processes only rank 0 keeps the stamps, so the ranks could not agree on such a round: there
            # the next invocation runs them.)
            rounds = len(everything) if getattr(self.executor, "world_size", 1) == 1 else 0
            for _ in range(rounds):
                order, reuse = self.plan(targets, (), declared)
                if not order and not reuse:
                    break
                for unit in order:
                    if unit.check is not None:
                        unit.check()
                self._reuse(reuse)
                execution.reused.extend(unit.name for unit, _ in reuse)
                self.executor.run(order, self.context, start, finish)
        return execution

    def devices(self, unit: Unit) -> float:
        """The CUDA devices charged to ``unit`` when its executor could not say which it used (see
        :class:`~.rundir.CudaUse`): on Ray the GPUs its kind reserves, elsewhere none."""
        if isinstance(self.executor, RayExecutor):
            return float(self.executor.execution.resources_for(unit.kind).num_gpus)
        return 0.0

    def _write_cost_sidecar(self, unit: Unit, entry: dict) -> None:
        path = self.run.resolve(unit.output_paths[0])
        io.write_json(path.with_name(path.name + COST_SIDECAR),
                      {"unit": unit.name, "kind": unit.kind, "key": unit.key, "wall_seconds": entry["wall_seconds"],
                       "gpu_seconds": entry["gpu_seconds"], "cuda_devices": entry["cuda_devices"],
                       "attempts": entry.get("attempts", 1), "finished": entry["finished"]})

    def _settle_killed(self, units: Sequence[Unit], heartbeat: Heartbeat) -> None:
        """A content-addressed unit killed after its outputs were in place but before it was recorded done is done
        (its outputs are named by its key): record it so, with the seconds it ran and its cost sidecar."""
        if not self.main_process:
            return
        for unit in units:
            entry = self.manifest["units"].get(unit.name)
            if not (unit.content_addressed and entry and entry.get("status") == "running"
                    and entry.get("key") == unit.key and self.outputs_exist(unit.output_paths)):
                continue
            lost = heartbeat.lost_seconds(unit.name, entry)
            entry["wall_seconds"] = entry.get("wall_seconds", 0.0) + lost
            # No attempt finished it: it ended when it was killed, and says so.
            entry.update(status="done", finished=float(entry["started"]) + lost, settled_after_kill=True,
                         cuda_devices=entry.get("cuda_devices", 0.0))
            entry.setdefault("gpu_seconds", 0.0)
            path = self.run.resolve(unit.output_paths[0])
            if not path.with_name(path.name + COST_SIDECAR).exists():
                self._write_cost_sidecar(unit, entry)
            heartbeat.end(unit.name)
            self._write_manifest()

    def _clear_leftovers(self, unit: Unit) -> None:
        """What an interrupted or failed attempt of ``unit`` left beside its outputs: the temporary files of atomic
        writes (``.<name>.*.tmp``) and staging folders (``<name>.partial*``). A kill -9 runs no cleanup; the next
        attempt does it, and a failed attempt does it at once."""
        if not self.main_process or unit.content_addressed:
            return  # a shared cache's files may be another run's work in progress
        for output in unit.output_paths:
            path = self.run.resolve(output)
            if not path.parent.is_dir():
                continue
            for leftover in [*path.parent.glob(f".{path.name}.*.tmp"), *path.parent.glob(f"{path.name}.partial*")]:
                _remove(leftover)

    def _write_manifest(self) -> None:
        if self.main_process:
            self.run.write_manifest(self.manifest)

    def unit_log(self, unit: Unit) -> Callable[[str], None]:
        """What ``unit`` logs with: the runner's log, and on the main process also the unit's file in ``RUN/logs``
        (the other processes of a launch say nothing)."""
        if not self.main_process:
            return self.log
        return UnitLog(unit_log_file(self.run.path, unit.name), self.log)

    def note(self, unit: Unit, message: str) -> None:
        """What the runner says about ``unit`` (started, done, failed), into its log file only."""
        if self.main_process:
            UnitLog(unit_log_file(self.run.path, unit.name)).record(f"{unit.name}: {message}")

    def context(self, unit: Unit) -> UnitContext:
        return UnitContext(
            name=unit.name, settings=unit.settings, options=unit.options,
            inputs={role: [self.run.resolve(p) for p in up.output_paths]
                    for role, up in {**unit.after, **unit.upstream}.items()},
            outputs=[self.run.resolve(p) for p in unit.output_paths], log=self.unit_log(unit), key=unit.key)

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
            entry.update(outputs=list(unit.output_paths), reused_from=donor, stage=unit.stage,
                         stamp=self.stamp(unit.output_paths), input_stamp=self.stamp(self.input_paths(unit)))
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


HEARTBEAT_FOLDER = ".heartbeat"
HEARTBEAT_SECONDS = 0.5


class Heartbeat:
    """A file per running unit whose modification time is renewed every ``HEARTBEAT_SECONDS`` by a thread: when
    an attempt is killed outright (kill -9, a lost machine) the next run counts its seconds up to the last beat,
    so that a unit's wall seconds cover every attempt (to within half a second)."""

    def __init__(self, folder: Path, active: bool = True):
        self.folder = folder
        self.active = active
        self.running: set[Path] = set()
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def path(self, name: str) -> Path:
        return self.folder / io.digest(name)

    def check(self) -> None:
        """Before any unit starts: the folder the beats go in is a folder (or not there yet)."""
        if self.active and self.folder.exists() and not self.folder.is_dir():
            raise UserError(f"{self.folder} is a file, not a folder: the run keeps a file per running unit there; "
                            "remove it")

    def lost_seconds(self, name: str, previous: dict) -> float:
        """The seconds the killed attempt recorded in ``previous`` ran, up to its last beat (0 without one)."""
        beat = self.path(name)
        if previous.get("status") != "running" or "started" not in previous or not beat.exists():
            return 0.0
        return max(0.0, beat.stat().st_mtime - float(previous["started"]))

    def begin(self, name: str, started: float) -> None:
        if not self.active:
            return
        beat = self.path(name)
        beat.parent.mkdir(parents=True, exist_ok=True)
        beat.write_text(name + "\n")
        os.utime(beat, (started, started))
        self.running.add(beat)

    def end(self, name: str) -> None:
        beat = self.path(name)
        self.running.discard(beat)
        if self.active:
            beat.unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            now = time.time()
            for beat in list(self.running):
                with contextlib.suppress(OSError):  # ended meanwhile
                    os.utime(beat, (now, now))

    def __enter__(self) -> Heartbeat:
        if self.active:
            self.thread = threading.Thread(target=self._beat, name="paretohqd-heartbeat", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()


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
