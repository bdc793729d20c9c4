"""paretohqd: offline multi-objective alignment of LLMs (ParetoHqD and baselines)."""

__version__ = "0.1.0"
