"""One writer at a time: the locks of a run directory, a shared score cache, an export folder and an output file.

Each is a ``filelock`` lock (the kernel's ``flock`` on a lock file), so the kernel releases it when its holder
exits, however it exits: a lock left by a process killed with ``kill -9`` is simply free for the next one. The lock
file holds its holder's record (host, pid, command, since), written once the lock is held, and is removed just
before the lock is released: a second writer names the holder in its refusal, and a writer that finds a record in a
lock file nobody holds knows that its last holder ended without releasing it, and says that it takes it over.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import UserError

LOCK_NAME = ".paretohqd.lock"
"""The lock file inside a folder that one writer owns (a run directory, a score cache)."""
HELD_BY_LAUNCHER = "PARETOHQD_HELD_LOCKS"
"""Environment variable: the lock files (``os.pathsep``-separated) that the process which started this one holds on
its behalf (``--accelerate_config`` relaunches the command; the launched processes must not wait for their parent)."""

_command: list[str] | None = None


def set_command(argv: list[str]) -> None:
    """What this process is, as the holder records name it (the CLI gives its arguments; else ``sys.argv``)."""
    global _command
    _command = ["paretohqd", *argv]


def holder_record() -> dict:
    command = _command if _command is not None else [Path(sys.argv[0]).name or "python", *sys.argv[1:]]
    return {"host": socket.gethostname(), "pid": os.getpid(), "command": shlex.join(command),
            "since": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())}


def describe_holder(record: dict | None) -> str:
    if not record:
        return "another process (it has not written its record yet)"
    return f"`{record.get('command', '?')}` (pid {record.get('pid', '?')} on {record.get('host', '?')}, since " \
           f"{record.get('since', '?')})"


def read_holder(lock_file: Path) -> dict | None:
    """The record in ``lock_file``: of its holder, or of a holder that ended without releasing it; None if none."""
    try:
        return _parse(Path(lock_file).read_bytes())
    except OSError:
        return None


def held_by_launcher(lock_file: Path) -> bool:
    held = os.environ.get(HELD_BY_LAUNCHER, "")
    return str(Path(lock_file).resolve()) in held.split(os.pathsep) if held else False


@contextlib.contextmanager
def handed_down(lock_file: str | os.PathLike) -> Iterator[None]:
    """The processes this one starts within the block (a relaunch under ``accelerate launch``) write under the lock
    ``lock_file`` that this process holds for them."""
    previous = os.environ.get(HELD_BY_LAUNCHER)
    os.environ[HELD_BY_LAUNCHER] = os.pathsep.join(filter(None, [previous, str(Path(lock_file).resolve())]))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(HELD_BY_LAUNCHER, None)
        else:
            os.environ[HELD_BY_LAUNCHER] = previous


_held: dict[Path, list] = {}
"""The writer locks this process holds: lock file -> [its FileLock, how many ``with`` blocks hold it]."""
_claimed = threading.local()


def _claim(fd: int) -> None:
    """filelock's ``on_acquired``: with the lock held, keep the record left in the file and write this holder's."""
    os.lseek(fd, 0, os.SEEK_SET)
    _claimed.previous = os.read(fd, 1 << 16)
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder_record()) + "\n").encode("utf-8"), 0)


@contextlib.contextmanager
def writer_lock(lock_file: str | os.PathLike, what: str, wait: bool = False,
                log: Callable[[str], None] | None = None, advice: str = "") -> Iterator[None]:
    """Hold the lock ``lock_file`` for the ``with`` block, as the one writer of ``what`` (``"output_dir 'runs/a'"``).

    Held by another process: one sentence naming it (``advice`` says what else to do), or with ``wait`` wait for
    it. Re-entrant within this process."""
    from filelock import FileLock, Timeout

    lock_file = Path(os.path.abspath(lock_file))
    if lock_file in _held:
        _held[lock_file][1] += 1
        try:
            yield
        finally:
            _held[lock_file][1] -= 1
        return
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_file, timeout=-1 if wait else 0, on_acquired=_claim)
    if wait and log is not None and (holder := read_holder(lock_file)) is not None:
        log(f"{what} is in use by {describe_holder(holder)}: waiting for it")
    _claimed.previous = b""
    try:
        lock.acquire()
    except Timeout:
        raise UserError(f"{what} is in use by {describe_holder(read_holder(lock_file))}: wait for it to finish "
                        f"(--wait waits){advice}") from None
    except OSError as exc:
        raise UserError(f"{what} cannot be locked for writing ({lock_file}: {exc.strerror or exc}); its file "
                        "system must support flock") from None
    _held[lock_file] = [lock, 1]
    try:
        if _claimed.previous.strip() and log is not None:
            log(f"{what}: {describe_holder(_parse(_claimed.previous))} ended without releasing its lock (killed?); "
                "taking it over")
        yield
    finally:
        del _held[lock_file]
        # Removed while still held, so that no lock file is left behind: a waiter that opened it finds it unlinked
        # once it gets the lock, and filelock then takes the lock on a new file.
        with contextlib.suppress(OSError):
            lock_file.unlink()
        lock.release()


def _parse(record: bytes) -> dict | None:
    try:
        value = json.loads(record)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def output_lock_file(path: str | os.PathLike) -> Path:
    """The lock file of an output that is one file or folder (an export, a ``generate --output`` file): beside it,
    hidden, since the output itself is replaced by rename."""
    path = Path(os.path.abspath(path))
    return path.with_name(f".{path.name}.lock")


def folder_lock_file(folder: str | os.PathLike) -> Path:
    return Path(folder) / LOCK_NAME


@contextlib.contextmanager
def waiting_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold ``path`` exclusively for the ``with`` block, waiting for any other holder: processes that start at once
    (the ranks of one launch, several runs converting the same model) wait for each other instead of writing over
    each other. Unlike :func:`writer_lock` it names no holder: every waiter will do the same work."""
    from filelock import FileLock

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path, timeout=-1):
        yield
