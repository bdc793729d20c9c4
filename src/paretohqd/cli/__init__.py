"""The `paretohqd` command. Thin: it parses arguments (``parser``), calls the Python API (``paretohqd.api``) and
prints (``commands``); ``main`` turns every refusal into one sentence and an exit code."""

from .commands import recipe_path
from .main import main
from .parser import build_parser

__all__ = ["build_parser", "main", "recipe_path"]
