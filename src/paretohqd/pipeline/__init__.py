"""The pipeline: declared units of work (``units``), the one mechanism that runs, skips, resumes or reuses them
(``runner``, ``executors``), the run directory (``rundir``), and the stages every method shares: inputs, score,
select, generate, evaluate (``plan`` strings them around a method's training units)."""

from .plan import COMMANDS, Plan, Shared, build_plan, execute
from .rundir import RunDir, read_eval_scores, read_metrics
from .runner import Execution, Runner, closure
from .status import unit_states
from .units import Unit, UnitContext

__all__ = ["COMMANDS", "Execution", "Plan", "RunDir", "Runner", "Shared", "Unit", "UnitContext",
           "build_plan", "closure", "execute", "read_eval_scores", "read_metrics", "unit_states"]
