"""One exception type for problems the user can fix; the CLI prints its message and exits with code 2. A file system
that refuses (``OSError``) is one sentence too, exit code 1."""


class UserError(Exception):
    """Bad input or configuration: the message is one sentence naming what is wrong and where."""

    exit_code = 2


def describe_os_error(exc: OSError) -> str:
    """One sentence for a refused file operation: what the system said, and about which file."""
    import os

    files = [f"'{name}'" for name in (exc.filename, getattr(exc, "filename2", None)) if name]
    said = " ".join(str(exc).split())
    if exc.strerror is None and not files and isinstance(exc, FileNotFoundError) and said:
        # pyarrow raises FileNotFoundError(path): no reason, and its text is only the path
        return f"No such file or directory: '{said}'"
    reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else None) or said or type(exc).__name__
    return f"{reason}: {' -> '.join(files)}" if files else reason


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message as one line (a library's multi-line message would break the one-sentence rule)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:limit]
