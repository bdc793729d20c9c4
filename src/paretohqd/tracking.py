"""Experiment trackers (``report_to``): every unit of one run in one place, and the run's result as its summary.

- W&B: each training unit is one W&B run named after the unit (``train/stage1/pref_00``), in the group of its run
  directory (``WANDB_RUN_GROUP``; one the user set wins), in the project ``WANDB_PROJECT`` (default ``paretohqd``).
  The report unit adds the run ``summary`` to the group: its summary holds every preference's mean rewards (the
  front), the hypervolumes and the collapse rate, with the front as a table and the Markdown report.
- TensorBoard: each training unit writes into ``RUN/logs/tensorboard/<unit name>`` and the summary into
  ``RUN/logs/tensorboard/summary``: ``tensorboard --logdir RUN/logs/tensorboard`` shows one run's units together.

Trackers are cosmetic: what ``report_to`` says, and these names, are in no unit's key.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import UserError

DEFAULT_WANDB_PROJECT = "paretohqd"
SUMMARY_NAME = "summary"
TRACKERS = ("wandb", "tensorboard")
"""The trackers whose runs are grouped here; any other ``report_to`` integration gets what transformers gives it."""


@dataclass(frozen=True)
class Tracking:
    """Where one unit reports: ``report_to`` as transformers takes it (``none``, ``all``, ``wandb``,
    ``wandb,tensorboard``, ...), the run's ``group``, the unit's ``name`` in it, and its TensorBoard folder."""

    report_to: str = "none"
    group: str | None = None
    name: str | None = None
    tensorboard_dir: str | None = None

    @property
    def integrations(self) -> list[str]:
        """``report_to`` as the trainer takes it: ``wandb,tensorboard`` is two integrations (transformers would take
        the text for one name and refuse it); ``none`` is none."""
        parts = [part.strip() for part in str(self.report_to).split(",") if part.strip()]
        return [part for part in parts if part != "none"]

    @property
    def trackers(self) -> list[str]:
        """The trackers of :data:`TRACKERS` this reports to (``all``: those installed, as transformers does)."""
        wanted = self.integrations
        if "all" in wanted:
            return [name for name in TRACKERS if _installed(name)]
        return [name for name in TRACKERS if name in wanted]


NO_TRACKING = Tracking()


def check_report_to(report_to: str) -> None:
    """``report_to``'s integrations known to transformers and, for the trackers grouped here, installed: one
    sentence before any work, where the trainer would fail only once a model starts training."""
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    for name in Tracking(report_to).integrations:
        if name != "all" and name not in INTEGRATION_TO_CALLBACK:
            raise UserError(f"report_to: '{name}' is not an integration transformers knows (known: none, all, "
                            f"{', '.join(sorted(INTEGRATION_TO_CALLBACK))}; several separated by commas)")
        if name in TRACKERS and not _installed(name):
            package = "tensorboard" if name == "tensorboard" else name
            raise UserError(f"report_to: {name} is not installed here (pip install {package}"
                            + ("; or the extra paretohqd[trackers]" if name == "tensorboard" else "") + ")")


def _installed(name: str) -> bool:
    if name == "tensorboard":
        return any(importlib.util.find_spec(module) is not None for module in ("tensorboard", "tensorboardX"))
    return importlib.util.find_spec(name) is not None


@contextlib.contextmanager
def tracked(tracking: Tracking) -> Iterator[None]:
    """The block in which a trainer is made and trains: its W&B run joins the run's group, its TensorBoard events go
    to the unit's folder (transformers 5 reads ``TENSORBOARD_LOGGING_DIR``; earlier versions take ``logging_dir``,
    which :func:`trainer_fields` gives). On leaving, the unit's W&B run is finished: transformers leaves it open, and
    the next unit of this process would log into it."""
    trackers = tracking.trackers
    values = {}
    if "wandb" in trackers:
        values["WANDB_RUN_GROUP"] = os.environ.get("WANDB_RUN_GROUP") or tracking.group
        values["WANDB_PROJECT"] = os.environ.get("WANDB_PROJECT") or DEFAULT_WANDB_PROJECT
    if "tensorboard" in trackers and tracking.tensorboard_dir:
        values["TENSORBOARD_LOGGING_DIR"] = tracking.tensorboard_dir
    with _environment({key: value for key, value in values.items() if value}):
        try:
            yield
        finally:
            if "wandb" in trackers:
                finish_wandb_run()


def trainer_fields(tracking: Tracking, config_class) -> dict:
    """The trainer config fields the unit's tracking sets: its run name, and on transformers versions that have the
    field its TensorBoard folder."""
    import dataclasses

    fields = {"run_name": tracking.name} if tracking.name else {}
    if tracking.tensorboard_dir and "logging_dir" in {f.name for f in dataclasses.fields(config_class)}:
        fields["logging_dir"] = tracking.tensorboard_dir
    return fields


def finish_wandb_run() -> None:
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


@contextlib.contextmanager
def _environment(values: dict) -> Iterator[None]:
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ------------------------------------------------------------------------------------------------- the summary


def summary_values(metrics: dict) -> dict[str, float]:
    """The run's result as flat numbers: ``front/<model>/<objective>`` (each evaluated preference's mean raw
    reward), ``collapse_rate/<model>``, every hypervolume by its name, and the aligned models' collapse rate."""
    names = metrics["objectives"]
    values: dict[str, float] = {}
    for entry in [*metrics.get("preferences", []), *(metrics.get("served") or [])]:
        for name, value in zip(names, entry["mean_rewards"]):
            values[f"front/{entry['model']}/{name}"] = float(value)
        values[f"collapse_rate/{entry['model']}"] = float(entry["collapse_rate"])
    for name in metrics.get("hypervolume_definitions", {}):
        if isinstance(metrics.get(name), (int, float)):
            values[f"hypervolume/{name}"] = float(metrics[name])
    if isinstance(metrics.get("collapse_rate"), (int, float)):
        values["collapse_rate"] = float(metrics["collapse_rate"])
    return values


def front_rows(metrics: dict) -> tuple[list[str], list[list]]:
    """(columns, rows) of the front: one row per evaluated model with its weights, mean rewards and collapse
    rate."""
    names = metrics["objectives"]
    columns = ["model", "weights", *(f"mean_{name}" for name in names), "collapse_rate"]
    entries = [*metrics.get("preferences", []), *(metrics.get("served") or [])]
    if metrics.get("base"):
        entries.append({"model": "base", "weights": None, **metrics["base"]})
    rows = [[entry["model"], " ".join(f"{w:.3g}" for w in entry["weights"]) if entry.get("weights") else "",
             *(float(v) for v in entry["mean_rewards"]), float(entry["collapse_rate"])] for entry in entries]
    return columns, rows


def log_summary(tracking: Tracking, metrics: dict, report_markdown: str) -> list[str]:
    """The run's result into each tracker ``tracking`` reports to (``name``: the summary's run name, ``group`` and
    ``tensorboard_dir`` the run's); returns the trackers written."""
    written = []
    for tracker in tracking.trackers:
        if tracker == "tensorboard" and tracking.tensorboard_dir:
            _tensorboard_summary(tracking.tensorboard_dir, metrics, report_markdown)
        elif tracker == "wandb":
            _wandb_summary(tracking, metrics, report_markdown)
        else:
            continue
        written.append(tracker)
    return written


def _tensorboard_summary(folder: str, metrics: dict, report_markdown: str) -> None:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch's writer needs the tensorboard package; tensorboardX is transformers' other writer
        from tensorboardX import SummaryWriter

    writer = SummaryWriter(log_dir=folder)
    try:
        for tag, value in summary_values(metrics).items():
            writer.add_scalar(tag, value, 0)
        names = metrics["objectives"]
        # Each objective's mean reward along the preference grid: the front as curves, one step per preference.
        for step, entry in enumerate(metrics.get("preferences", [])):
            for name, value in zip(names, entry["mean_rewards"]):
                writer.add_scalar(f"front_by_preference/{name}", float(value), step)
        columns, rows = front_rows(metrics)
        table = "\n".join(["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
                          + ["| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row) + " |"
                             for row in rows])
        writer.add_text("front", table, 0)
        writer.add_text("report", report_markdown, 0)
    finally:
        writer.close()


def _wandb_summary(tracking: Tracking, metrics: dict, report_markdown: str) -> None:
    import wandb

    finish_wandb_run()  # a run left open in this process is a unit's, not the summary
    run = wandb.init(project=os.environ.get("WANDB_PROJECT") or DEFAULT_WANDB_PROJECT,
                     group=os.environ.get("WANDB_RUN_GROUP") or tracking.group, name=tracking.name or SUMMARY_NAME,
                     job_type="evaluation")
    try:
        run.summary.update(summary_values(metrics))
        columns, rows = front_rows(metrics)
        run.log({"front": wandb.Table(columns=columns, data=rows)})
        run.summary["report"] = report_markdown
    finally:
        run.finish()
