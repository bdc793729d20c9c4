"""Plots written as PNG files (matplotlib, headless Agg backend): one skeleton of pairwise panels, drawn three ways.

With three or more objectives every pair of objectives gets a panel (a projection); with one objective a single
panel plots it against itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations
from pathlib import Path

import numpy as np

from . import io

MAX_BACKGROUND_POINTS = 20_000
MARKERS = "osD^vP*X"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def objective_pairs(n_objectives: int) -> list[tuple[int, int]]:
    """The panels of a pairwise plot: every pair of objectives, or one objective against itself."""
    return list(combinations(range(n_objectives), 2)) or [(0, 0)]


def background_rows(n: int) -> np.ndarray:
    """Which of ``n`` scored samples a selection plot draws as its background cloud: at most
    ``MAX_BACKGROUND_POINTS``, drawn without replacement by a fixed seed, so the same data give the same plot."""
    return np.random.default_rng(0).choice(n, size=min(n, MAX_BACKGROUND_POINTS), replace=False)


def ray_end(direction) -> np.ndarray:
    """Where a drawn preference ray ends: from the ideal point (1, ..., 1), 1.5 along its unit ``direction``
    (which points into the unit box), past the box's far side for every direction."""
    return 1.0 + 1.5 * np.asarray(direction, dtype=np.float64)


def pairwise_plot(path: Path, names: Sequence[str], title: str, draw: Callable, units: str = "mean raw reward",
                  panel_size: tuple[float, float] = (5.5, 4.8), legend: str = "panel", equal: bool = False) -> None:
    """One panel per pair of objectives; ``draw(ax, i, j, plt)`` fills a panel. Saved atomically as PNG."""
    plt = _pyplot()
    pairs = objective_pairs(len(names))
    fig, axes = plt.subplots(1, len(pairs), figsize=(panel_size[0] * len(pairs), panel_size[1]), squeeze=False)
    for ax, (i, j) in zip(axes[0], pairs):
        draw(ax, i, j, plt)
        ax.set_xlabel(f"{names[i]} ({units})")
        ax.set_ylabel(f"{names[j]} ({units})")
        if equal:
            ax.set_xlim(-0.05, 1.05)
            ax.set_ylim(-0.05, 1.05)
            ax.set_aspect("equal")
        else:
            ax.grid(alpha=0.3)
    if legend == "figure":
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=1.5)
    elif legend == "panel" and axes[0][0].get_legend_handles_labels()[0]:
        axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_selection(z: np.ndarray, pool: np.ndarray, num_layers: int, chosen: Sequence[dict], names: Sequence[str],
                   path: Path) -> None:
    """The scored cloud, the first Pareto layers, each preference's ray and its selected points, in normalised
    units (where the rays live: from the ideal point (1, ..., 1) towards the preference).

    ``chosen``: per preference ``{"label", "direction", "rows"}`` with rows indexing ``z``."""
    background = background_rows(len(z))

    def draw(ax, i, j, plt):
        colours = plt.get_cmap("viridis")(np.linspace(0, 1, len(chosen)))
        ax.scatter(z[background, i], z[background, j], s=3, c="0.82", label="scored samples", rasterized=True)
        ax.scatter(z[pool, i], z[pool, j], s=5, c="0.45", label=f"first {num_layers} Pareto layers")
        for colour, entry in zip(colours, chosen):
            picked = z[np.asarray(entry["rows"], dtype=int)]
            ax.scatter(picked[:, i], picked[:, j], s=14, color=colour, edgecolors="black", linewidths=0.3,
                       label=entry["label"])
            end = ray_end(entry["direction"])
            ax.plot([1.0, end[i]], [1.0, end[j]], color=colour, linewidth=1)

    pairwise_plot(path, names, "ParetoHqD selection: rays from the ideal point and the samples nearest each", draw,
                  units="normalised", panel_size=(5.2, 5.0), legend="figure", equal=True)


def plot_front(points: np.ndarray, labels: Sequence[str], names: Sequence[str], path: Path, title: str,
               base: np.ndarray | None = None) -> None:
    """Each model's mean raw reward vector, labelled; the base model as a star."""

    def draw(ax, i, j, plt):
        colours = plt.get_cmap("viridis")(np.linspace(0, 1, max(1, len(points))))
        ax.plot(points[:, i], points[:, j], color="0.7", linewidth=0.8, zorder=1)
        ax.scatter(points[:, i], points[:, j], c=colours, s=50, edgecolors="black", zorder=2)
        for point, label in zip(points, labels):
            ax.annotate(label, (point[i], point[j]), fontsize=7, xytext=(4, 4), textcoords="offset points")
        if base is not None:
            ax.scatter([base[i]], [base[j]], marker="*", s=220, c="crimson", edgecolors="black", zorder=3,
                       label="base model")

    pairwise_plot(path, names, title, draw)


def plot_fronts(fronts: dict[str, np.ndarray], names: Sequence[str], path: Path, title: str,
                base: np.ndarray | None = None) -> None:
    """Several runs' fronts, one line and marker each; ``base``: the base models' points, the yardstick."""

    def draw(ax, i, j, plt):
        for n, (label, points) in enumerate(fronts.items()):
            order = np.argsort(points[:, i])
            ax.plot(points[order, i], points[order, j], marker=MARKERS[n % len(MARKERS)], label=label, linewidth=1)
        if base is not None and len(base):
            ax.scatter(base[:, i], base[:, j], marker="x", color="black", s=60, zorder=5, label="base model")

    pairwise_plot(path, names, title, draw)
