"""Self-contained HTML pages that open offline in a browser: one run's report (the held-out front, the selection,
sample outputs side by side, the headline numbers) and the comparison of several runs' fronts.

plotly.js travels inside the page (once, with its first figure): no CDN, no network. A page is byte-deterministic
for the same inputs (fixed figure ids, no timestamps, stable order), so a resumed run writes the same report as an
uninterrupted one; the only lines that measure seconds carry ``class="timing"``, on lines of their own.

This module knows nothing of run directories: it takes metrics dicts, frames and arrays. plotly is imported inside
the functions, so that ``import paretohqd`` stays fast.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

import numpy as np
import pandas as pd

from ..plots import background_rows, objective_pairs, ray_end
from ..tables import format_vector
from .metrics import BASE, format_front_table, format_vs_base_table, weights_label
from .report import headline, prompt_number, report_title

FRONT_DIV = "front"
"""The id of the report's front figure (``document.getElementById("front").data`` in a browser)."""
SELECTION_DIV = "selection-{index}"
COMPARE_DIV = "fronts"
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"format": "svg"}}
PANEL_HEIGHT = 460
MAX_PANEL_COLUMNS = 3
BASE_MARKER = {"symbol": "star", "size": 18, "color": "black", "line": {"color": "white", "width": 1}}
SERVED_MARKER = {"symbol": "diamond-open", "size": 13, "color": "#d62728", "line": {"width": 2.5}}
RUN_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
               "#17becf")


@dataclass(frozen=True)
class SelectionView:
    """One selection stage as its plot draws it: the scored cloud, the pool of first Pareto layers, and each
    preference's ray and chosen samples. Without a pool (a method that selects nothing) only the cloud, in raw
    units."""

    title: str
    names: list[str]
    z: np.ndarray
    """``(n, M)`` the scores as drawn: normalised (ideal point (1, ..., 1)) or, without a pool, raw."""
    raw: np.ndarray
    """``(n, M)`` raw scores, for the hover of chosen samples."""
    sample_ids: np.ndarray
    """``(n,)`` the samples' ids."""
    pool: np.ndarray | None = None
    """Rows of the pool (the first ``num_layers`` Pareto layers), or None."""
    num_layers: int = 0
    chosen: list[dict] = field(default_factory=list)
    """Per preference ``{"label", "weights", "direction", "rows", "layers"}``, rows indexing ``z``."""

    @property
    def normalised(self) -> bool:
        return self.pool is not None


# ---------------------------------------------------------------------------------------------------- pages


def report_page(metrics: dict, scored: pd.DataFrame, sample_outputs: int,
                selections: Sequence[SelectionView] = ()) -> str:
    """One run's report: headline numbers, the held-out front, each selection stage, sample outputs side by side.
    ``metrics``: eval/metrics.json; ``scored``: eval/scores.parquet (one row per model and test prompt)."""
    figures = [("Held-out front", _figure_note(metrics), FRONT_DIV, front_figure(metrics))]
    figures += [(view.title, _selection_note(view), SELECTION_DIV.format(index=i), selection_figure(view))
                for i, view in enumerate(selections)]
    items = "\n".join(f'<li class="{kind}">{_inline_markdown(text)}</li>' for text, kind in headline(metrics))
    body = [f"<h1>{escape(report_title(metrics))}</h1>", f'<ul class="headline">\n{items}\n</ul>',
            *_figure_sections(figures),
            "<h2>Front</h2>", f"<pre>{escape(format_front_table(metrics))}</pre>",
            *(["<h2>Against the base model</h2>", f"<pre>{escape(format_vs_base_table(metrics))}</pre>"]
              if metrics.get("vs_base") else []),
            f"<h2>Sample outputs</h2>\n{samples_table(metrics, scored, sample_outputs)}"]
    return _page(report_title(metrics), body)


def comparison_page(title: str, runs: Sequence[tuple[str, dict]], tables: Sequence[tuple[list[str], list[list]]],
                    footer: Sequence[str]) -> str:
    """Several runs' fronts on one plot (``runs``: each run's label and eval/metrics.json, in table order) and the
    comparison's tables (header, rows) and footer lines."""
    rendered = [_table(header, rows) for header, rows in tables]
    notes = "\n".join(f"<li>{escape(line)}</li>" for line in footer)
    body = [f"<h1>{escape(title)}</h1>", *_figure_sections([("Fronts", "", COMPARE_DIV, fronts_figure(runs))]),
            "<h2>Comparison</h2>", *rendered, f'<ul class="notes">\n{notes}\n</ul>']
    return _page(title, body)


# -------------------------------------------------------------------------------------------------- figures


def front_figure(metrics: dict):
    """The held-out front: one marker per trained model (coloured along the grid), the base model as a black
    star, served preferences (beyond the trained grid) as open diamonds, each kind its own trace (``legendgroup``
    ``trained``, ``base``, ``served``) in every panel; hover: model, weights, mean rewards, collapse rate."""
    names = metrics["objectives"]
    fig, panels = _panels(names, "mean raw reward")
    trained = _model_points(metrics["preferences"], names)
    base = _model_points(_base_entry(metrics), names)
    served = _model_points(metrics.get("served") or [], names, _served_lines)
    colours = _viridis(len(trained["points"]))
    for first, (cell, (i, j)) in _first(panels):
        _add_points(fig, cell, trained, i, j, "trained models", "trained", first,
                    {"size": 12, "color": colours, "line": {"color": "black", "width": 1}},
                    line={"color": "#b0b0b0", "width": 1})
        if base["points"].size:
            _add_points(fig, cell, base, i, j, "base model", "base", first, BASE_MARKER)
        if served["points"].size:
            _add_points(fig, cell, served, i, j, "served (beyond the trained grid)", "served", first, SERVED_MARKER)
    return fig


def fronts_figure(runs: Sequence[tuple[str, dict]]):
    """Every run's front, one colour per run: its trained models joined by a line, its base model a star, its
    served preferences open diamonds (a legend entry each; clicking a run's entry hides that run)."""
    names = runs[0][1]["objectives"]
    fig, panels = _panels(names, "mean raw reward")
    for n, (label, metrics) in enumerate(runs):
        colour = RUN_COLOURS[n % len(RUN_COLOURS)]
        trained = _model_points(metrics["preferences"], names, run=label)
        base = _model_points(_base_entry(metrics), names, run=label)
        served = _model_points(metrics.get("served") or [], names, _served_lines, run=label)
        for first, (cell, (i, j)) in _first(panels):
            _add_points(fig, cell, trained, i, j, label, f"run:{n}", first,
                        {"size": 10, "color": colour, "line": {"color": "black", "width": 0.5}},
                        line={"color": colour, "width": 1.5}, sort_by_x=True)
            if base["points"].size:
                _add_points(fig, cell, base, i, j, f"{label}: base model", f"run:{n}", first,
                            {**BASE_MARKER, "color": colour, "line": {"color": "black", "width": 1}})
            if served["points"].size:
                _add_points(fig, cell, served, i, j, f"{label}: served", f"run:{n}", first,
                            {**SERVED_MARKER, "color": colour})
    return fig


def selection_figure(view: SelectionView):
    """The scored cloud (at most ``plots.MAX_BACKGROUND_POINTS``, the same sample as selection.png), the pool,
    and per preference its ray from the ideal point and its chosen samples (hover: preference, sample id, Pareto
    layer, raw scores); normalised units with equal axes, as selection.png draws them."""
    import plotly.graph_objects as go

    units = "normalised" if view.normalised else "raw reward"
    fig, panels = _panels(view.names, units, equal=view.normalised)
    background = background_rows(len(view.z))
    colours = _viridis(len(view.chosen))
    pool_rows = np.asarray(view.pool if view.pool is not None else [], dtype=np.int64)
    raw_hover = "<br>".join(f"{escape(name)} %{{customdata[{1 + m}]:.4g}}" for m, name in enumerate(view.names))
    for first, (cell, (i, j)) in _first(panels):
        # float32: half the page's bytes for the cloud, far finer than a pixel
        fig.add_trace(go.Scatter(x=view.z[background, i].astype(np.float32),
                                 y=view.z[background, j].astype(np.float32), mode="markers",
                                 marker={"size": 3, "color": "#d4d4d4"}, hoverinfo="skip",
                                 name=f"scored samples ({len(background):,} of {len(view.z):,} drawn)",
                                 legendgroup="cloud", showlegend=first), **cell)
        if view.pool is not None:
            fig.add_trace(go.Scatter(x=view.z[pool_rows, i].astype(np.float32),
                                     y=view.z[pool_rows, j].astype(np.float32), mode="markers",
                                     marker={"size": 4, "color": "#6e6e6e"}, hoverinfo="skip",
                                     name=f"first {view.num_layers} Pareto layers ({len(pool_rows):,} samples)",
                                     legendgroup="pool", showlegend=first), **cell)
        for n, (colour, entry) in enumerate(zip(colours, view.chosen)):
            rows = np.asarray(entry["rows"], dtype=np.int64)
            # numbers in one float array (the Pareto layer, then the raw scores); the ids, any type, as text
            numbers = np.column_stack([np.asarray(entry["layers"], dtype=np.float64), view.raw[rows]])
            label = escape(entry["label"])
            fig.add_trace(go.Scatter(x=view.z[rows, i], y=view.z[rows, j], mode="markers", name=entry["label"],
                                     marker={"size": 7, "color": colour, "line": {"color": "black", "width": 0.4}},
                                     customdata=numbers, text=_escaped(view.sample_ids[rows]),
                                     legendgroup=f"pref:{n}", showlegend=first,
                                     hovertemplate=f"<b>{label}</b><br>sample %{{text}}<br>Pareto layer "
                                                   f"%{{customdata[0]}}<br>{raw_hover}<extra></extra>"), **cell)
            end = ray_end(entry["direction"])
            fig.add_trace(go.Scatter(x=[1.0, end[i]], y=[1.0, end[j]], mode="lines", showlegend=False,
                                     line={"color": colour, "width": 1.5}, legendgroup=f"pref:{n}",
                                     hovertemplate=f"ray of {label}<extra></extra>"), **cell)
    return fig


# --------------------------------------------------------------------------------------------------- tables


def samples_table(metrics: dict, scored: pd.DataFrame, count: int) -> str:
    """Rows: the first ``count`` test prompts (the prompt once per row); columns: the base model, each trained
    model, each served preference; a cell: the response (HTML-escaped), its rewards and a degenerate flag."""
    names = metrics["objectives"]
    models = [(BASE, "base model")] if metrics.get("base") else []
    models += [(p["model"], f"w={weights_label(p['weights'], '.2g')}") for p in metrics["preferences"]]
    models += [(s["model"], f"w={weights_label(s['weights'], '.2g')}, {s.get('mode', 'served')}")
               for s in metrics.get("served") or []]
    present = set(scored["model"])
    models = [(model, note) for model, note in models if model in present]
    prompts = scored.drop_duplicates("prompt_id").sort_values("prompt_id", key=prompt_number).head(count)
    if prompts.empty or not models:
        return f"<p>None shown (evaluate.sample_outputs is {count}).</p>" if count < 1 else "<p>No outputs.</p>"
    cells = scored[scored["prompt_id"].isin(prompts["prompt_id"])].set_index(["prompt_id", "model"])
    header = "".join(f"<th>{escape(model)}<br><small>{escape(note)}</small></th>" for model, note in models)
    rows = []
    for prompt_id, prompt in zip(prompts["prompt_id"], prompts["prompt"]):
        row = [f'<td class="prompt"><div class="scroll">{escape(prompt.strip())}</div>'
               f"<small>{escape(prompt_id)}</small></td>"]
        for model, _ in models:
            key = (prompt_id, model)
            row.append(_sample_cell(cells.loc[key], names) if key in cells.index else '<td class="missing">-</td>')
        rows.append("<tr>" + "".join(row) + "</tr>")
    return (f'<div class="samples"><table>\n<thead><tr><th>prompt</th>{header}</tr></thead>\n<tbody>\n'
            + "\n".join(rows) + "\n</tbody></table></div>")


def _sample_cell(answer: pd.Series, names: list[str]) -> str:
    response = str(answer["response"])
    text = escape(response) if response.strip() else "<em>(empty)</em>"
    rewards = " &middot; ".join(f"{escape(name)} {float(answer[name]):.3g}" for name in names)
    flag = ' <span class="flag">degenerate</span>' if bool(answer.get("degenerate", False)) else ""
    return f'<td><div class="scroll">{text}</div><div class="rewards">{rewards}{flag}</div></td>'


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{escape(str(cell))}</th>" for cell in header)
    body = "\n".join("<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return (f'<div class="wide"><table class="numbers">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n'
            "</tbody></table></div>")


# --------------------------------------------------------------------------------------------------- pieces


def _panels(names: Sequence[str], units: str, equal: bool = False):
    """A figure with one panel per pair of objectives (``plots.objective_pairs``), at most three a row; returns
    it and, per panel, (``{"row", "col"}`` for ``add_trace``, (i, j))."""
    from plotly.subplots import make_subplots

    pairs = objective_pairs(len(names))
    columns = min(MAX_PANEL_COLUMNS, len(pairs))
    rows = -(-len(pairs) // columns)
    fig = make_subplots(rows=rows, cols=columns, horizontal_spacing=0.08, vertical_spacing=0.12)
    panels = []
    for index, (i, j) in enumerate(pairs):
        cell = {"row": index // columns + 1, "col": index % columns + 1}
        fig.update_xaxes(title_text=f"{names[i]} ({units})", **cell)
        fig.update_yaxes(title_text=f"{names[j]} ({units})", **cell)
        if equal:
            fig.update_xaxes(range=[-0.05, 1.05], constrain="domain", **cell)
            fig.update_yaxes(range=[-0.05, 1.05], scaleanchor="x" if index == 0 else f"x{index + 1}", **cell)
        panels.append((cell, (i, j)))
    fig.update_layout(template="plotly_white", height=PANEL_HEIGHT * rows, margin={"l": 60, "r": 20, "t": 30,
                      "b": 50}, legend={"itemsizing": "constant"}, hovermode="closest")
    return fig, panels


def _first(panels):
    """Each panel with whether it is the first: only there does a trace show in the legend (one entry per kind,
    whose click hides it in every panel, through its ``legendgroup``)."""
    return ((index == 0, panel) for index, panel in enumerate(panels))


def _model_points(entries: Sequence[dict], names: Sequence[str], more_lines=None, run: str | None = None) -> dict:
    """The points of ``entries`` (metrics' ``{model, weights, mean_rewards, collapse_rate}``) and their hover
    texts; ``more_lines(entry)`` adds lines to an entry's hover."""
    points = np.array([entry["mean_rewards"] for entry in entries], dtype=np.float64).reshape(-1, len(names))
    texts = []
    for entry in entries:
        lines = ([f"run {escape(run)}"] if run else []) + [f"<b>{escape(entry['model'])}</b>"]
        if entry.get("weights"):
            lines.append(f"weights {format_vector(entry['weights'], '.3g')}")
        lines += [f"{escape(name)} {value:.4g}" for name, value in zip(names, entry["mean_rewards"])]
        if entry.get("collapse_rate") is not None:  # an older run's metrics may not say
            lines.append(f"collapse rate {entry['collapse_rate']:.1%}")
        texts.append("<br>".join(lines + (more_lines(entry) if more_lines else [])))
    return {"points": points, "texts": texts}


def _base_entry(metrics: dict) -> list[dict]:
    """The base model as an entry like the trained models' (none when the run has no base model)."""
    return [{"model": BASE, "weights": None, **metrics["base"]}] if metrics.get("base") else []


def _served_lines(entry: dict) -> list[str]:
    """What a served preference was made from: its mode and each trained model with its share of the mix."""
    parts = [f"{escape(source['model'])} {format_vector(source['weights'], '.2g')} &times; {source['weight']:.2f}"
             for source in entry.get("from") or []]
    lines = [f"served by {escape(str(entry.get('mode', '?')))} from:"] + [f"&nbsp;&nbsp;{part}" for part in parts]
    if "dominated_by_trained" in entry:
        lines.append("dominated by a trained model" if entry["dominated_by_trained"] else "not dominated")
    return lines


def _add_points(fig, cell: dict, data: dict, i: int, j: int, name: str, group: str, show_legend: bool, marker: dict,
                line: dict | None = None, sort_by_x: bool = False) -> None:
    import plotly.graph_objects as go

    order = np.argsort(data["points"][:, i], kind="stable") if sort_by_x else np.arange(len(data["points"]))
    colour = marker.get("color")
    if isinstance(colour, list):
        marker = {**marker, "color": [colour[k] for k in order]}
    fig.add_trace(go.Scatter(x=data["points"][order, i].tolist(), y=data["points"][order, j].tolist(),
                             mode="lines+markers" if line else "markers", line=line, marker=marker, name=name,
                             text=[data["texts"][k] for k in order], hovertemplate="%{text}<extra></extra>",
                             legendgroup=group, showlegend=show_legend), **cell)


def _escaped(values: np.ndarray) -> list[str]:
    """``values`` as text that plotly's hover (a subset of HTML) shows as it is."""
    text = pd.Series(values).astype(str)
    for character, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        text = text.str.replace(character, entity, regex=False)
    return text.tolist()


def _viridis(n: int) -> list[str]:
    from plotly.colors import sample_colorscale

    return sample_colorscale("Viridis", np.linspace(0.0, 1.0, n).tolist()) if n else []


def _figure_note(metrics: dict) -> str:
    served = metrics.get("served") or []
    note = (f"One point per trained model ({len(metrics['preferences'])}): its mean raw reward vector over the "
            f"{metrics['num_test_prompts']} held-out prompts.")
    if metrics.get("base"):
        note += " The star is the base model."
    if served:
        note += (f" Open diamonds: {len(served)} preferences beyond the trained grid, served from the trained "
                 "models (hover says which, in what mix).")
    return note + " Hover for the numbers; click a legend entry to hide it."


def _selection_note(view: SelectionView) -> str:
    if not view.normalised:
        return "The scored offline data in raw reward units (this method selects no subset)."
    return ("Normalised units (each objective min-max over the scored data, the ideal point at (1, ..., 1)): each "
            "preference's ray runs from the ideal point along its direction, and its chosen samples are the pool's "
            "nearest to it.")


def _figure_sections(figures) -> list[str]:
    """Each figure as a section, plotly.js inline with the first only (once per page)."""
    import plotly.io as pio

    sections = []
    for index, (title, note, div_id, fig) in enumerate(figures):
        plot = pio.to_html(fig, config=PLOTLY_CONFIG, include_plotlyjs=index == 0, full_html=False, div_id=div_id)
        sections.append(f"<h2>{escape(title)}</h2>\n" + (f'<p class="note">{escape(note)}</p>\n' if note else "")
                        + plot)
    return sections


def _inline_markdown(text: str) -> str:
    """The headline's Markdown (bold and code spans) as HTML, everything else escaped."""
    html = escape(text)
    html = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html)


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em 2em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
ul.headline li { margin: 0.25em 0; } ul.headline li.timing { color: #666; }
p.note { color: #555; max-width: 70em; } code { background: #f3f3f3; padding: 0 0.2em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; }
div.samples { overflow-x: auto; }
div.samples table { border-collapse: collapse; table-layout: fixed; }
div.samples th, div.samples td { border: 1px solid #ddd; padding: 0.4em; vertical-align: top; width: 22em;
  min-width: 16em; }
div.samples th { background: #fafafa; position: sticky; top: 0; }
div.samples td.prompt { background: #fcfcf4; }
div.scroll { max-height: 14em; overflow-y: auto; white-space: pre-wrap; overflow-wrap: anywhere; }
div.rewards { color: #555; font-size: 0.85em; margin-top: 0.3em; }
span.flag { background: #d62728; color: white; border-radius: 3px; padding: 0 0.3em; }
table.numbers { border-collapse: collapse; margin: 0.6em 0; }
table.numbers th, table.numbers td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right;
  white-space: nowrap; }
div.wide { overflow-x: auto; }
table.numbers td:first-child, table.numbers th:first-child { text-align: left; }
ul.notes { color: #555; }
"""


def _page(title: str, body: Sequence[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{escape(title)}</title>"
            f"\n<style>{STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")
