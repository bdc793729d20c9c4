"""One exception type for problems the user can fix; the CLI prints its message and exits with code 2. A file system
that refuses (``OSError``) is one sentence too, exit code 1."""


class UserError(Exception):
    """Bad input or configuration: the message is one sentence naming what is wrong and where."""

    exit_code = 2


def describe_os_error(exc: OSError) -> str:
    """One sentence for a refused file operation: what the system said, and about which file."""
    reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    files = [f"'{name}'" for name in (exc.filename, getattr(exc, "filename2", None)) if name]
    return f"{reason}: {' -> '.join(files)}" if files else reason


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message as one line (a library's multi-line message would break the one-sentence rule)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:limit]
