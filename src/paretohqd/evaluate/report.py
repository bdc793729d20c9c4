"""The front plot and a readable Markdown report of one run's evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import io
from ..plots import _pyplot


def plot_front(table: pd.DataFrame, names: list[str], path, title: str) -> None:
    """Each model's mean raw reward vector; the base model as a star. Three or more objectives: pairwise panels."""
    from itertools import combinations

    plt = _pyplot()
    pairs = list(combinations(range(len(names)), 2)) or [(0, 0)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.5 * len(pairs), 4.8), squeeze=False)
    aligned = table[table["model"] != "base"]
    base = table[table["model"] == "base"]
    colours = plt.get_cmap("viridis")(np.linspace(0, 1, max(1, len(aligned))))
    for ax, (i, j) in zip(axes[0], pairs):
        xi, yj = f"mean_{names[i]}", f"mean_{names[j]}"
        ax.plot(aligned[xi], aligned[yj], color="0.7", linewidth=0.8, zorder=1)
        ax.scatter(aligned[xi], aligned[yj], c=colours, s=50, edgecolors="black", zorder=2)
        for (_, row), colour in zip(aligned.iterrows(), colours):
            label = "(" + ", ".join(f"{w:.1f}" for w in row["weights"]) + ")" if row["weights"] else row["model"]
            ax.annotate(label, (row[xi], row[yj]), fontsize=7, xytext=(4, 4), textcoords="offset points")
        if len(base):
            ax.scatter(base[xi], base[yj], marker="*", s=220, c="crimson", edgecolors="black", zorder=3,
                       label="base model")
            ax.legend(fontsize=8)
        ax.set_xlabel(f"{names[i]} (mean raw reward)")
        ax.set_ylabel(f"{names[j]} (mean raw reward)")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def write_report(run, metrics: dict, table: pd.DataFrame, scored: pd.DataFrame, samples_per_model: int) -> None:
    from .metrics import format_front_table

    names = metrics["objectives"]
    lines = [f"# {metrics['method']} on {', '.join(names)}", "",
             f"- test prompts: {metrics['num_test_prompts']}, seed {metrics['seed']}",
             f"- hypervolume: **{metrics['hypervolume']:.4f}** (objectives min-max normalised over the union of the "
             f"compared points: low {_fmt(metrics['normalisation']['low'])}, high "
             f"{_fmt(metrics['normalisation']['high'])}; reference point {_fmt(metrics['reference_point']['raw'])} "
             f"raw = {_fmt(metrics['reference_point']['normalised'])} normalised)"]
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
    io.write_text(run.path / "eval" / "report.md", "\n".join(lines))


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in values) + ")"
