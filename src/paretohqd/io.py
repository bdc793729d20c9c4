"""Files: atomic writes, and the content fingerprints that unit keys are made of.

Every artifact is written to a temporary file in the same folder, then renamed: a crash (even kill -9) leaves
either the old file or the new one, never half of one, so a unit that finds its output file can trust it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)


def give_usual_permissions(path: str | os.PathLike) -> None:
    """The permissions a new file gets under this process's umask (tools that write owner-only files, mkstemp and
    safetensors, leave 0600)."""
    os.chmod(path, 0o666 & ~_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates the file owner-only (0600); artifacts get the usual permissions of new files.
    give_usual_permissions(tmp_path)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except OSError as exc:
        if exc.errno is None or exc.filename == str(path):
            raise
        # The temporary name means nothing to the user: name the file that could not be written.
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def replaced_folder(target: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging folder beside ``target``; when the block ends without error it replaces ``target``
    (a crash never leaves half a model where a whole one is expected), otherwise it is removed."""
    target = Path(target)
    staging = target.with_name(f"{target.name}.partial{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_parquet(path: str | os.PathLike, frame, row_group_size: int | None = None) -> None:
    """Write a pandas DataFrame as Parquet atomically; ``row_group_size`` rows per row group (a table read back in
    slices: :func:`read_parquet_rows` reads only the groups a slice needs)."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False, **({"row_group_size": row_group_size} if row_group_size else {}))


def read_parquet_rows(path: str | os.PathLike, start: int, stop: int):
    """Rows ``start:stop`` of a Parquet table as pandas (index ``start..stop-1``, as ``iloc`` would give), reading
    only the row groups that hold them: a score shard of a million-row table reads its own rows, not the table."""
    import numpy as np
    import pyarrow.parquet as pq

    with pq.ParquetFile(path, pre_buffer=False) as parquet:
        sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.metadata.num_row_groups)]
        bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        groups = [i for i in range(len(sizes)) if bounds[i] < stop and bounds[i + 1] > start]
        table = parquet.read_row_groups(groups) if groups else parquet.schema_arrow.empty_table()
    first = int(bounds[groups[0]]) if groups else start
    frame = table.slice(start - first, max(0, stop - start)).to_pandas()
    frame.index = range(start, start + len(frame))
    return frame


def json_default(obj: Any) -> Any:
    # numpy scalars and arrays show up in stats and selections; keep the files plain JSON.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


# ---------------------------------------------------------------------------------------------------------------
# Content fingerprints: what unit keys are made of (never a modification time).


def digest(obj: Any, length: int = 20) -> str:
    """A short sha256 of a JSON-safe value, independent of dict order: equal values give equal digests."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=json_default, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def cache_root() -> Path:
    """The user-level cache (converted models, fingerprints): ``$PARETOHQD_CACHE`` or ``~/.cache/paretohqd``."""
    return Path(os.environ.get("PARETOHQD_CACHE", Path.home() / ".cache" / "paretohqd"))


def content_fingerprint(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, or of a folder's relative file names and their bytes.

    Hashing a multi-GB model takes seconds, so each file's hash is remembered under its (path, size, mtime, inode)
    in the user cache: an unchanged file is not read twice, and a touched or re-copied file is read again and, if
    its bytes are the same, gives the same fingerprint. The modification time only decides whether to re-read.
    """
    path = Path(path).resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    known = _read_fingerprint_cache()
    parts, changed = [], False
    for file in files:
        stat = file.stat()
        stamp = f"{file}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}"
        sha = known.get(stamp)
        if sha is None:
            sha = file_sha256(file)
            known[stamp] = sha
            changed = True
        parts.append([file.relative_to(path).as_posix() if path.is_dir() else file.name, sha])
    if changed:
        _write_fingerprint_cache(known)
    return digest(parts, length=32)


STAMP_DIGEST = "xxh3_128"


def file_stamp_digest(path: Path) -> str:
    """A fast digest of a file's bytes (xxHash's XXH3, 128 bits: ~10 GB/s, disk permitting), for telling whether
    an output still holds what its unit wrote: ``"xxh3_128:<hex>"``. Not for keys (those stay sha256)."""
    import xxhash

    hasher = xxhash.xxh3_128()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 23), b""):
            hasher.update(block)
    return f"{STAMP_DIGEST}:{hasher.hexdigest()}"


def same_bytes(path: Path, recorded: str) -> bool:
    """Whether ``path`` holds the bytes a stamp digest recorded (:func:`file_stamp_digest`, or the sha256 hex of
    stamps from before 0.8)."""
    if recorded.startswith(STAMP_DIGEST + ":"):
        return file_stamp_digest(path) == recorded
    return file_sha256(path) == recorded


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            sha.update(block)
    return sha.hexdigest()


_FINGERPRINT_CACHE_LIMIT = 100_000


def _fingerprint_cache_path() -> Path:
    return cache_root() / "fingerprints.json"


def _read_fingerprint_cache() -> dict[str, str]:
    try:
        return read_json(_fingerprint_cache_path())
    except (OSError, ValueError):
        return {}


def _write_fingerprint_cache(known: dict[str, str]) -> None:
    if len(known) > _FINGERPRINT_CACHE_LIMIT:
        known = dict(list(known.items())[-_FINGERPRINT_CACHE_LIMIT // 2:])
    with contextlib.suppress(OSError):  # a read-only home only costs re-hashing next time
        write_json(_fingerprint_cache_path(), known)


def link_or_copy(source: Path, target: Path) -> None:
    """Copy a file or folder by hard links where the file system allows (instant, no extra space: every artifact
    is replaced by rename, never edited in place), else by copying."""
    import shutil

    def copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    if Path(source).is_dir():
        shutil.copytree(source, target, copy_function=copy)
    else:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        copy(str(source), str(target))
