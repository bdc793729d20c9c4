"""The codebase is clean under ruff with the configuration in pyproject.toml ([tool.ruff])."""

import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

CHECKED = ["src", "tests", "bench", "scripts"]


def ruff_command() -> list[str]:
    """ruff beside this interpreter (the Makefile installs it into the venv with the test extra), else on PATH."""
    beside = Path(sys.executable).with_name("ruff")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("ruff")
    assert found, "ruff is not installed: `make venv` installs it (pyproject's test extra, pinned in the Makefile)"
    return [found]


def test_ruff_finds_nothing():
    result = subprocess.run([*ruff_command(), "check", "--no-cache", "--output-format", "concise", *CHECKED],
                            cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"ruff check {' '.join(CHECKED)}:\n{result.stdout}{result.stderr}"
