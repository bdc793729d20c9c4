"""The comparison of runs (``compare.compare_frames``' result) as text: the terminal's tables, compare.md's
Markdown and compare.html's tables all draw the same cells from here."""

from __future__ import annotations

from ..tables import format_table, format_vector
from .metrics import HV_RAW_REF, HV_UNION_WORST


def _number(value, digits: str = ".0f") -> str:
    return "-" if value is None else f"{value:{digits}}"


def format_comparison(result: dict, markdown: bool = False) -> str:
    """The comparison as text for the terminal, or as Markdown tables (``markdown``) for compare.md."""
    render = _markdown_table if markdown else format_table
    parts = [render(header, rows) for header, rows in comparison_tables(result)]
    parts.append("\n".join(("- " if markdown else "") + line for line in comparison_footer(result)))
    return "\n\n".join(parts)


def comparison_tables(result: dict) -> list[tuple[list[str], list[list[str]]]]:
    """The comparison's tables as (header, rows) of formatted cells: one row per run, then, when some method has
    several seeds, one row per method (mean and spread over its seeds). Every rendering (terminal, compare.md,
    compare.html) draws these."""
    field = result["hypervolume_field"]
    with_ratios = result["reference_method"] is not None
    with_gpu = any((row.get("method_gpu_seconds") or 0) > 0 for row in result["runs"])
    header = ["run", "seed", "models", "prompts", "HV [95% CI]", "HV union (secondary)", "collapse [95% CI]"]
    if with_ratios:
        header += [f"P({result['reference_method']} > run)", "HV / ParetoHqD"]
    header += ["train s", "gen s", "train+gen s"] + (["train+gen GPU-s"] if with_gpu else [])
    if with_ratios:
        header.append("time / ParetoHqD")
    rows = []
    for row in result["runs"]:
        cells = [row["label"], "-" if row["seed"] is None else str(row["seed"]), str(row["models"]),
                 str(row["num_test_prompts"]),
                 f"{row[field]:.4f} [{row[field + '_ci_low']:.4f}, {row[field + '_ci_high']:.4f}]",
                 _number(row.get(HV_UNION_WORST), ".4f"),
                 f"{row['collapse_rate']:.1%} [{row['collapse_rate_ci_low']:.1%}, {row['collapse_rate_ci_high']:.1%}]"]
        if with_ratios:
            cells += [_number(row.get("p_paretohqd_higher"), ".3f"), _number(row.get("hypervolume_vs_paretohqd"),
                                                                            ".3f")]
        cells += [_number(row["training_wall_seconds"]), _number(row["generation_wall_seconds"]),
                  _number(row["method_wall_seconds"])] + ([_number(row["method_gpu_seconds"])] if with_gpu else [])
        if with_ratios:
            cells.append(_number(row.get("time_vs_paretohqd"), ".3f"))
        rows.append(cells)
    tables = [(header, rows)]
    if any(m["n_runs"] > 1 for m in result["methods"]):
        header = ["method", "seeds", "HV mean ± sd", "collapse mean ± sd"]
        header += ([f"P({result['reference_method']} > method)", "pairing"] if with_ratios else [])
        header += ["train s", "gen s", "train+gen s"] + (["time / ParetoHqD"] if with_ratios else [])
        rows = []
        for m in result["methods"]:
            cells = [m["method"], ", ".join("-" if s is None else str(s) for s in m["seeds"]),
                     f"{m[field + '_mean']:.4f} ± {_number(m[field + '_sd'], '.4f')}",
                     f"{m['collapse_rate_mean']:.1%} ± "
                     f"{'-' if m['collapse_rate_sd'] is None else format(m['collapse_rate_sd'], '.1%')}"]
            if with_ratios:
                cells += [_number(m.get("p_paretohqd_higher"), ".3f"), m.get("pairing") or "-"]
            cells += [_number(m["training_wall_seconds_mean"]), _number(m["generation_wall_seconds_mean"]),
                      _number(m["method_wall_seconds_mean"])]
            if with_ratios:
                cells.append(_number(m.get("time_vs_paretohqd"), ".3f"))
            rows.append(cells)
        tables.append((header, rows))
    return tables


def comparison_footer(result: dict) -> list[str]:
    """The lines under the tables: the hypervolume's definition, the intervals, the cost, the notes."""
    field, record = result["hypervolume_field"], result["hypervolume_definition"]
    reference = record["reference_point"]
    if field == HV_RAW_REF:
        lines = [f"hypervolume {field}: raw reward units above the reference point {format_vector(reference['raw'])}, "
                 f"declared by {result.get('reference_point_declared_by', '--reference_point')} (the same number as "
                 "each run's own paretohqd evaluate gives on that point; HV union: min-max over the compared points, "
                 "worst corner, secondary)"]
    else:
        norm = record["normalisation"]
        lines = [f"hypervolume {field}: shared normalisation: min-max over all compared points, low "
                 f"{format_vector(norm['low'])}, high {format_vector(norm['high'])}; reference point "
                 f"{format_vector(reference['raw'])} raw = {format_vector(reference['normalised'])} normalised "
                 "(the worst corner)"]
    boot = result["bootstrap"]
    lines.append(f"intervals: 95% percentile bootstrap over test prompt ids, {boot['replicates']} replicates, seed "
                 f"{boot['seed']}, on that fixed normalisation and reference point"
                 + ("; P(ParetoHqD > run): two-level bootstrap (seeds resampled per method, prompts resampled once "
                    "for both), share of replicates in which ParetoHqD's seed-averaged hypervolume is higher (ties "
                    "count one half)" if result["reference_method"] else ""))
    lines.append("cost: wall seconds of the method's own units (every recorded attempt); train = training and "
                 "selection, gen = the method's own generation (stage-2 / online data; answering the held-out "
                 "prompts is evaluation, in no method's cost)")
    for line in result["scoring"]:
        spread = line["wall_seconds_range"]
        lines.append(f"scoring of the offline data, shared by {', '.join(line['runs'])} and in no method's cost: "
                     f"{line['wall_seconds']:.0f} s wall, {line['gpu_seconds']:.0f} GPU-s"
                     + (f" (per run {spread[0]:.0f}-{spread[1]:.0f} s: each merges on its own)"
                        if spread[1] - spread[0] >= 1 else ""))
    unscored = [row["label"] for row in result["runs"]
                if row["scoring_wall_seconds"] is not None and row["scoring_key"] is None]
    if unscored:
        lines.append(f"no scoring of the offline data for {', '.join(unscored)} (the method does not use the scores)")
    return lines + result["notes"]


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)
