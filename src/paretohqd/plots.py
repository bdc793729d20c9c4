"""Plots written as PNG files (matplotlib, headless Agg backend)."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np

from . import io

MAX_BACKGROUND_POINTS = 20_000


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_selection(points: np.ndarray, result, names: list[str], path: Path) -> None:
    """The scored cloud, the first Pareto layers, each preference's ray and its selected points.

    Drawn in normalised units (where the rays live: from the ideal point (1, ..., 1) towards the preference);
    with three or more objectives, one panel per pair of objectives shows the projection.
    """
    plt = _pyplot()
    z = result.stats.apply(points)
    m = z.shape[1]
    pairs = list(combinations(range(m), 2)) if m >= 2 else [(0, 0)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 5), squeeze=False)
    rng = np.random.default_rng(0)
    background = rng.choice(len(z), size=min(len(z), MAX_BACKGROUND_POINTS), replace=False)
    colours = plt.get_cmap("viridis")(np.linspace(0, 1, len(result)))
    for ax, (i, j) in zip(axes[0], pairs):
        ax.scatter(z[background, i], z[background, j], s=3, c="0.82", label="scored samples", rasterized=True)
        pool = z[result.pool_indices]
        ax.scatter(pool[:, i], pool[:, j], s=5, c="0.45", label=f"first {result.num_layers} Pareto layers")
        for colour, chosen in zip(colours, result):
            picked = z[chosen.indices]
            w = np.asarray(chosen.weights)
            ax.scatter(picked[:, i], picked[:, j], s=14, color=colour, edgecolors="black", linewidths=0.3,
                       label=f"w=({', '.join(f'{x:.2g}' for x in w)})")
            direction = np.asarray(chosen.direction)
            end = 1.0 + 1.5 * direction
            ax.plot([1.0, end[i]], [1.0, end[j]], color=colour, linewidth=1)
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel(f"{names[i]} (normalised)")
        ax.set_ylabel(f"{names[j]} (normalised)")
        ax.set_aspect("equal")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=1.5)
    fig.suptitle("ParetoHqD selection: rays from the ideal point and the samples nearest each")
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
