"""The docs site builds with ``mkdocs build --strict`` (offline), and its generated references cover the code: every
config section and every command, with the names taken from the code itself."""

from __future__ import annotations

import argparse
import dataclasses
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from paretohqd.cli import build_parser
from paretohqd.config import RunConfig

REPO = Path(__file__).resolve().parents[1]

pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
pytest.importorskip("material", reason="the docs extra is not installed (pip install -e '.[docs]')")
pytest.importorskip("mkdocstrings_handlers.python", reason="the docs extra is not installed (pip install -e '.[docs]')")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(target)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return target


def page_text(site: Path, page: str) -> str:
    raw = (site / page / "index.html").read_text()
    return html.unescape(re.sub(r"<[^>]+>", " ", raw))


def headings(site: Path, page: str) -> set[str]:
    raw = (site / page / "index.html").read_text()
    return {" ".join(html.unescape(re.sub(r"<[^>]+>", " ", inner)).replace("¶", " ").split())
            for inner in re.findall(r"<h[1-6][^>]*>(.*?)</h[1-6]>", raw, flags=re.S)}


def config_sections(cls: type, prefix: str = "") -> list[str]:
    """Dotted names of every section below ``cls``, as the config addresses them (lists by index)."""
    import typing

    names = []
    for field in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[field.name]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        sub = (hint if dataclasses.is_dataclass(hint)
               else args[0] if origin is list and args and dataclasses.is_dataclass(args[0])
               else args[1] if origin is dict and len(args) == 2 and dataclasses.is_dataclass(args[1]) else None)
        if sub is not None:
            name = f"{prefix}{field.name}" + (".0" if origin is list else ".<key>" if origin is dict else "")
            names += [name, *config_sections(sub, name + ".")]
    return names


def commands(parser: argparse.ArgumentParser, prefix: str = "paretohqd") -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += [f"{prefix} {name}", *commands(sub, f"{prefix} {name}")]
    return found


def test_config_reference_has_every_section_and_key(site):
    text, titles = page_text(site, "reference/config"), headings(site, "reference/config")
    names = config_sections(RunConfig)
    assert len(names) >= 10  # the walk found the sections (data, objectives, score, ...)
    for name in names:
        assert name in titles, f"no section heading for {name}"
    for field in dataclasses.fields(RunConfig):
        assert field.name in text, field.name


def test_cli_reference_has_every_command_and_option(site):
    text, titles = page_text(site, "reference/cli"), headings(site, "reference/cli")
    parser = build_parser()
    names = commands(parser)
    assert {"paretohqd run", "paretohqd rewards fit"} <= set(names)
    for name in names:
        assert name in titles, f"no heading for {name}"
    for sub in subparsers(parser):
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                for option in action.option_strings:
                    assert option in text, option


def subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += [sub, *subparsers(sub)]
    return found


def test_python_api_page_documents_the_top_level_functions(site):
    import paretohqd

    text = page_text(site, "reference/python-api")
    for name in paretohqd._API:
        assert f"{name}(" in text.replace(" (", "("), name


def test_benchmark_sections_live_in_the_docs(site):
    """The bench scripts write their sections between markers in docs pages; the README carries only the small
    results table the comparison script writes there."""
    for page, marker in [("docs/benchmarks/comparison.md", "compare_methods"),
                         ("docs/benchmarks/demo.md", "one_hots_more_prompts")]:
        text = (REPO / page).read_text()
        assert f"<!-- {marker}:begin -->" in text and f"<!-- {marker}:end -->" in text, page
    readme = (REPO / "README.md").read_text()
    assert "<!-- compare_methods_summary:begin -->" in readme and "<!-- compare_methods:begin -->" not in readme
    assert len(readme.splitlines()) <= 200


def test_no_reference_to_method_md_is_left():
    """The algorithm notes are docs pages now; code points to the page that holds what it cites."""
    stale = [f"{path.relative_to(REPO)}:{number}" for folder in ("src", "tests", "bench")
             for path in (REPO / folder).rglob("*.py") if path != Path(__file__).resolve()
             for number, line in enumerate(path.read_text().splitlines(), 1) if "METHOD.md" in line]
    assert not stale, stale
    cited = {match for folder in ("src", "bench") for path in (REPO / folder).rglob("*.py")
             for match in re.findall(r"docs/[\w/-]+\.md", path.read_text())}
    assert cited, "no docstring points to a docs page"
    missing = sorted(page for page in cited if not (REPO / page).exists())
    assert not missing, missing
