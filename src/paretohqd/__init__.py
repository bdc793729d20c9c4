"""paretohqd: offline multi-objective alignment of LLMs with ParetoHqD, and the baselines it is measured against.

The Python API (loaded on first use, so that ``import paretohqd`` and ``paretohqd --help`` stay instant):
``load_config``, ``run``, ``run_stage``, ``plan``, ``status``, ``compare``, ``load_policy`` (any preference of a
finished run: a model and its tokenizer), ``export`` and ``push`` (a finished run on the Hugging Face Hub); and the
Pareto functions in :mod:`paretohqd.pareto` (numpy only).
"""

__version__ = "0.9.0"

_API = ("load_config", "run", "run_stage", "plan", "status", "compare", "load_policy", "export", "push")

__all__ = ["__version__", *_API]  # noqa: PLE0604 (the API names, strings)


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'paretohqd' has no attribute {name!r}")
