"""Plain-text tables for the terminal and the Markdown reports: one formatter for every table the CLI prints."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], footer: Sequence[str] = ()) -> str:
    """Right-aligned columns, a dashed rule under the header, then free-text footer lines."""
    cells = [list(map(str, header))] + [list(map(str, row)) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines + list(footer))


def format_vector(values, digits: str = ".4g") -> str:
    """``(0.5, -1.25)``: a reward vector or point in one cell."""
    return "(" + ", ".join(f"{float(v):{digits}}" for v in values) + ")"
