"""The import contract: imports run one way, function-level imports included.

    cli -> api -> (serving, exporting, pushing) -> methods -> pipeline -> (train, policy, rewards, evaluate)
        -> (pareto, data, config, io, tracking, ...)

Every ``import`` statement anywhere in a module (inside functions too) is read from the source with ``ast``; an
import from a higher layer, an import cycle between modules, pareto importing anything but numpy and moocore, or
the config importing a stage fails this test and names the file and line.
"""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "paretohqd"
LAYERS = [
    {"paretohqd.cli"},
    {"paretohqd", "paretohqd.api", "paretohqd.launch"},
    {"paretohqd.serving", "paretohqd.exporting", "paretohqd.pushing", "paretohqd.push_inputs"},
    {"paretohqd.methods"},
    {"paretohqd.pipeline"},
    {"paretohqd.train", "paretohqd.policy", "paretohqd.rewards", "paretohqd.evaluate"},
    {"paretohqd.pareto", "paretohqd.data", "paretohqd.config", "paretohqd.io", "paretohqd.errors", "paretohqd.env",
     "paretohqd.text", "paretohqd.model_files",
     "paretohqd.plots", "paretohqd.tables", "paretohqd.locking", "paretohqd.tracking"},
]
# Imports between groups of one layer that the design allows: the package exports the API (lazily); training uses
# the policy object; the bottom layer's few helpers (errors, io) serve the others in it.
SIDEWAYS = {("paretohqd", "paretohqd.api"), ("paretohqd.train", "paretohqd.policy"),
            ("paretohqd.exporting", "paretohqd.serving"), ("paretohqd.pushing", "paretohqd.exporting"),
            ("paretohqd.pushing", "paretohqd.push_inputs"), ("paretohqd.push_inputs", "paretohqd.exporting"),
            ("paretohqd.config", "paretohqd.errors"), ("paretohqd.config", "paretohqd.text"),
            ("paretohqd.data", "paretohqd.text"), ("paretohqd.text", "paretohqd.errors"),
            ("paretohqd.model_files", "paretohqd.errors"),
            ("paretohqd.data", "paretohqd.errors"), ("paretohqd.plots", "paretohqd.io"),
            ("paretohqd.io", "paretohqd.errors"), ("paretohqd.locking", "paretohqd.errors"),
            ("paretohqd.tracking", "paretohqd.errors")}
LAYER_OF = {group: index for index, groups in enumerate(LAYERS) for group in groups}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path, name: str | None = None, text: str | None = None):
    """(line, imported module) for every import statement in the file, resolved to absolute names."""
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(text if text is not None else path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            for alias in node.names:  # "from .. import io" imports the module paretohqd.io
                candidate = f"{prefix}.{alias.name}"
                location = PACKAGE.parent / candidate.replace(".", "/")
                is_module = location.with_suffix(".py").exists() or location.is_dir()
                yield node.lineno, candidate if is_module else prefix


def group(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_group_has_a_layer():
    groups = {group(module_name(path)) for path in MODULES}
    assert groups - set(LAYER_OF) == set(), "place every new package or module in LAYERS"


def violations(path: Path, name: str | None = None, text: str | None = None) -> list[str]:
    source = group(name or module_name(path))
    wrong = []
    for line, target in imports(path, name, text):
        if not target.startswith("paretohqd"):
            continue
        destination = group(target)
        if destination == source or LAYER_OF[destination] > LAYER_OF[source] or (source, destination) in SIDEWAYS:
            continue
        wrong.append(f"{path.name}:{line} imports {target} ({source} may not import {destination})")
    return wrong


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_one_way(path):
    wrong = violations(path)
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    names = {module_name(p) for p in MODULES}
    for path in MODULES:
        graph[module_name(path)] = {t for _, t in imports(path) if t in names and t != module_name(path)}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            # A package's __init__ that re-exports its own modules is not a cycle with them.
            if nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(nxt):], nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def third_party(path: Path) -> set[str]:
    return {target.split(".")[0] for _, target in imports(path)
            if not target.startswith("paretohqd") and target.split(".")[0] not in sys.stdlib_module_names
            and target != "__future__"}


def test_pareto_imports_only_numpy_moocore_and_scipy():
    for path in (PACKAGE / "pareto").rglob("*.py"):
        assert third_party(path) <= {"numpy", "moocore", "scipy"}, path


def test_config_imports_no_stage():
    for path in (PACKAGE / "config").rglob("*.py"):
        assert third_party(path) <= {"omegaconf", "yaml"}, path
        stages = {group(t) for _, t in imports(path) if t.startswith("paretohqd")} - {"paretohqd.config"}
        assert stages <= {"paretohqd.errors", "paretohqd.text"}, path  # text: the one reader of user text


def test_the_contract_catches_an_upward_import_inside_a_function():
    code = "import numpy as np\n\ndef f():\n    from ..pipeline import Unit\n    from . import layers\n"
    found = violations(PACKAGE / "pareto" / "fake.py", "paretohqd.pareto.fake", code)
    assert found == ["fake.py:4 imports paretohqd.pipeline (paretohqd.pareto may not import paretohqd.pipeline)"]
