"""A readable Markdown report of one run's evaluation, beside its front plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..plots import plot_front
from ..tables import format_vector
from .metrics import BASE, format_front_table, weights_label


def write_report(folder: Path, metrics: dict, table: pd.DataFrame, scored: pd.DataFrame,
                 samples_per_model: int) -> None:
    """``front.png`` and ``report.md`` (plot, table, sample outputs per model) in ``folder``."""
    names = metrics["objectives"]
    aligned = table[table["model"] != BASE]
    base = table[table["model"] == BASE]
    columns = [f"mean_{n}" for n in names]
    labels = [weights_label(w, ".1f") if w else m for m, w in zip(aligned["model"], aligned["weights"])]
    plot_front(aligned[columns].to_numpy(dtype=np.float64), labels, names, Path(folder) / "front.png",
               title=f"{metrics['method']}: held-out front",
               base=base[columns].to_numpy(dtype=np.float64)[0] if len(base) else None)
    norm = metrics["normalisation"]
    lines = [f"# {metrics['method']} on {', '.join(names)}", "",
             f"- test prompts: {metrics['num_test_prompts']}, seed {metrics['seed']}",
             f"- hypervolume: **{metrics['hypervolume']:.4f}** (objectives min-max normalised over the union of the "
             f"compared points: low {format_vector(norm['low'], '.3g')}, high {format_vector(norm['high'], '.3g')}; "
             f"reference point {format_vector(metrics['reference_point']['raw'], '.3g')} raw = "
             f"{format_vector(metrics['reference_point']['normalised'], '.3g')} normalised)"]
    if metrics.get("base"):
        lines.append(f"- hypervolume with the base model's point as reference: "
                     f"{metrics['hypervolume_vs_base']:.4f} (normalised units)")
    lines += [f"- collapse rate (aligned models): {metrics['collapse_rate']:.2%}",
              "- wall seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in metrics["wall_seconds"].items()), "",
              "![front](front.png)", "", "## Front", "", "```", format_front_table(metrics), "```", "",
              "## Sample outputs", ""]
    for model in table["model"]:
        part = scored[scored["model"] == model].sort_values("prompt_id", key=lambda s: s.str[1:].astype(int))
        lines.append(f"### {model}")
        lines.append("")
        for _, row in part.head(samples_per_model).iterrows():
            question = row["prompt"].strip().replace("\n", " ")[-200:]
            answer = row["response"].replace("\n", " ")[:400]
            rewards = ", ".join(f"{n} {row[n]:.2f}" for n in names)
            lines += [f"- **prompt** …{question}", f"  **response** {answer or '(empty)'}  ", f"  _{rewards}_"]
        lines.append("")
    io.write_text(Path(folder) / "report.md", "\n".join(lines))
