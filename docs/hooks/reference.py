"""MkDocs hook: the configuration and command-line references, generated from the code at every build.

A page holds a marker comment (``<!-- generated: config -->`` or ``<!-- generated: cli -->``) where the reference
goes; the hook puts there what the code says today, so a setting or a command added to the code appears in the
docs without anyone writing it:

- the config reference walks ``paretohqd.config.RunConfig``: every section (a dataclass field whose type is a
  dataclass, a list of one, or a dict of one), each field's type and default, and the docstring written under the
  field (read from the source with ``ast``: Python keeps no attribute docstrings at run time);
- the CLI reference walks the parser ``paretohqd.cli.build_parser()`` builds: every command and sub-command, its
  description, usage line and arguments.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import sys
import textwrap
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The checkout's own code, whatever paretohqd the environment has installed: the reference describes this tree.
sys.path.insert(0, str(ROOT / "src"))

# Lambdas: the builders are defined below this table.
MARKERS = {"<!-- generated: config -->": lambda: config_reference(),  # noqa: PLW0108
           "<!-- generated: cli -->": lambda: cli_reference()}  # noqa: PLW0108


def on_page_markdown(markdown: str, page, config, files) -> str:
    for marker, render in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, render())
    return markdown


# --- configuration -------------------------------------------------------------------------------------------------

def field_docs(cls: type) -> tuple[dict[str, str], dict[str, str]]:
    """(field -> the docstring under it, field -> its annotation as written) of a dataclass, from its source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs, annotations = {}, {}
    for node, after in zip(body, [*body[1:], None]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            annotations[node.target.id] = ast.unparse(node.annotation)
            if (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs, annotations


def section_class(cls: type, name: str) -> tuple[type | None, str]:
    """The dataclass a field of ``cls`` holds (itself, one per list item, or one per dict value) and how it is
    addressed: '' for a section, '.0' for a list (by index on the command line), '.<key>' for a dict."""
    hint = typing.get_type_hints(cls)[name]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return hint, ""
    if origin is list and args and dataclasses.is_dataclass(args[0]):
        return args[0], ".0"
    if origin is dict and len(args) == 2 and dataclasses.is_dataclass(args[1]):
        return args[1], ".<key>"
    return None, ""


def default_of(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "required"
    if dataclasses.is_dataclass(value):
        return "its section's defaults"
    return code(repr(value))


def code(text: str) -> str:
    """Text that fits in a code span in one Markdown table cell (no escapes work inside a code span)."""
    return "`" + " ".join(text.split()) + "`"


def cell(text: str) -> str:
    """Text that fits in one Markdown table cell."""
    # Brackets would read as Markdown reference links ("[--prompts FILE]").
    return " ".join(text.split()).replace("|", "\\|").replace("[", "\\[").replace("]", "\\]")


def sections(cls: type, prefix: str) -> list[tuple[str, type]]:
    """(dotted name, dataclass) of ``cls`` and of every section below it, depth first."""
    found = [(prefix, cls)]
    for field in dataclasses.fields(cls):
        sub, address = section_class(cls, field.name)
        if sub is not None:
            found += sections(sub, f"{prefix}.{field.name}{address}" if prefix else f"{field.name}{address}")
    return found


def config_reference() -> str:
    from paretohqd.config import RunConfig

    lines = []
    for name, cls in sections(RunConfig, ""):
        docs, annotations = field_docs(cls)
        title = f"`{name}`" if name else "Top level"
        lines += [f"## {title} {{ #{anchor(name) or 'top-level'} }}", ""]
        if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("):  # dataclasses invent a signature
            lines += [inspect.cleandoc(cls.__doc__), ""]
        lines += [f"Dataclass `{cls.__module__}.{cls.__qualname__}`.", "",
                  "| key | type | default | meaning |", "|---|---|---|---|"]
        for field in dataclasses.fields(cls):
            sub, address = section_class(cls, field.name)
            key = f"{name}.{field.name}" if name else field.name
            meaning = docs.get(field.name, "")
            if sub is not None:
                meaning = f"{meaning} See [`{key}{address}`](#{anchor(key + address)}).".strip()
            lines.append(f"| `{key}` | {code(annotations.get(field.name, str(field.type)))} | "
                         f"{cell(default_of(field))} | {cell(meaning)} |")
        lines.append("")
    return "\n".join(lines)


def anchor(title: str) -> str:
    """The id the toc extension gives a heading ``## `title` ``: lower case, runs of other characters to '-'."""
    out, dash = [], False
    for char in title.lower():
        if char.isalnum() or char == "_":
            out.append(char)
            dash = False
        elif not dash:
            out.append("-")
            dash = True
    return "".join(out).strip("-")


# --- command line --------------------------------------------------------------------------------------------------

def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def help_of(parser: argparse.ArgumentParser, name: str) -> str:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if choice.dest == name:
                    return choice.help or ""
    return ""


def arguments_table(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| argument | default | meaning |", "|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            name = ", ".join(action.option_strings)
            if action.nargs != 0:
                name += f" {action.metavar or action.dest.upper()}"
        else:
            name = action.metavar or action.dest
        default = "" if action.default in (None, False, argparse.SUPPRESS) or action.nargs == 0 \
            else code(repr(action.default))
        meaning = (action.help or "").replace("%%", "%")
        if action.choices and not isinstance(action.choices, dict):
            meaning += f" (one of: {', '.join(map(str, action.choices))})"
        if action.required and action.option_strings:
            meaning += " Required."
        rows.append(f"| {code(name)} | {cell(default)} | {cell(meaning)} |")
    return rows if len(rows) > 2 else []


def command_reference(parser: argparse.ArgumentParser, path: list[str], lines: list[str], text: str) -> None:
    lines += [f"{'#' * min(len(path) + 1, 4)} `{' '.join(path)}`", ""]
    description = parser.description or text
    if description:
        lines += [cell(description), ""]
    usage = " ".join(parser.format_usage().split())
    lines += ["```text", usage.removeprefix("usage: "), "```", "", *arguments_table(parser), ""]
    for name, sub in subcommands(parser).items():
        command_reference(sub, [*path, name], lines, help_of(parser, name))


def cli_reference() -> str:
    from paretohqd.cli import build_parser

    parser = build_parser()
    lines: list[str] = []
    command_reference(parser, ["paretohqd"], lines, "")
    if parser.epilog:
        lines += ["## Every command", "", cell(parser.epilog), ""]
    return "\n".join(lines)
