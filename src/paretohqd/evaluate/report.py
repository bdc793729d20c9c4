"""A readable Markdown report of one run's evaluation, beside its front plot; its headline, which the HTML report
(``evaluate.html``) says too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..plots import plot_front
from ..tables import format_vector
from .metrics import (
    BASE,
    BASE_HV_RAW_REF,
    HV_RAW_REF,
    HV_RUN_BASE,
    HV_RUN_WORST,
    HV_RUN_WORST_SERVED,
    format_front_table,
    format_vs_base_table,
    weights_label,
)


def write_report(folder: Path, metrics: dict, table: pd.DataFrame, scored: pd.DataFrame,
                 samples_per_model: int) -> None:
    """``front.png`` and ``report.md`` (plot, table, sample outputs per model) in ``folder``."""
    names = metrics["objectives"]
    earlier = [pair["earlier"] for pair in (metrics.get("earlier_stage") or {}).get("pairs", ())]
    aligned = table[~table["model"].isin([BASE, *earlier])]
    base = table[table["model"] == BASE]
    columns = [f"mean_{n}" for n in names]
    labels = [weights_label(w, ".1f") if w else m for m, w in zip(aligned["model"], aligned["weights"])]
    plot_front(aligned[columns].to_numpy(dtype=np.float64), labels, names, Path(folder) / "front.png",
               title=f"{metrics['method']}: held-out front",
               base=base[columns].to_numpy(dtype=np.float64)[0] if len(base) else None)
    lines = [f"# {report_title(metrics)}", "", *(f"- {text}" for text, _ in headline(metrics))]
    lines += ["",
              "![front](front.png)", "", "## Front", "", "```", format_front_table(metrics), "```", ""]
    if metrics.get("vs_base"):
        lines += ["## Against the base model", "", "```", format_vs_base_table(metrics), "```", ""]
    lines += ["## Sample outputs", ""]
    for model in table["model"]:
        part = scored[scored["model"] == model].sort_values("prompt_id", key=prompt_number)
        lines.append(f"### {model}")
        lines.append("")
        for _, row in part.head(samples_per_model).iterrows():
            question = row["prompt"].strip().replace("\n", " ")[-200:]
            answer = row["response"].replace("\n", " ")[:400]
            rewards = ", ".join(f"{n} {row[n]:.2f}" for n in names)
            lines += [f"- **prompt** …{question}", f"  **response** {answer or '(empty)'}  ", f"  _{rewards}_"]
        lines.append("")
    io.write_text(Path(folder) / "report.md", "\n".join(lines))


def report_title(metrics: dict) -> str:
    return f"{metrics['method']} on {', '.join(metrics['objectives'])}"


TIMING = "timing"
"""The kind of a headline line that measures seconds: runs with equal results differ there (and only there)."""


def headline(metrics: dict) -> list[tuple[str, str]]:
    """The report's headline numbers, each ``(line, kind)``: the line in Markdown (bold and code spans only),
    kind ``"timing"`` (``TIMING``) for the lines that measure seconds, ``"result"`` for the others. Both
    reports (report.md, report.html) say exactly these."""
    definitions = metrics["hypervolume_definitions"]
    norm = definitions[HV_RUN_WORST]["normalisation"]
    lines = [f"test prompts: {metrics['num_test_prompts']}, seed {metrics['seed']}"]
    if HV_RAW_REF in metrics:
        reference = metrics.get("reference_point") or {}
        base = (f"; the base model alone: {metrics[BASE_HV_RAW_REF]:.4g}" if BASE_HV_RAW_REF in metrics else "")
        lines.append(f"hypervolume `{HV_RAW_REF}`: **{metrics[HV_RAW_REF]:.4g}** (raw reward units above the "
                     f"reference point {format_vector(definitions[HV_RAW_REF]['reference_point']['raw'], '.3g')}, "
                     f"declared before training: {reference.get('rule', 'evaluate.reference_point')}; comparable "
                     f"with every run on the same reference point){base}")
    lines.append(f"hypervolume `{HV_RUN_WORST}`: {metrics[HV_RUN_WORST]:.4f} (secondary: objectives min-max "
                 f"normalised over this run's aligned and base points: low {format_vector(norm['low'], '.3g')}, high "
                 f"{format_vector(norm['high'], '.3g')}; reference point the worst corner "
                 f"{format_vector(definitions[HV_RUN_WORST]['reference_point']['raw'], '.3g')} raw; not comparable "
                 "with another run's)")
    if HV_RUN_BASE in metrics:
        lines.append(f"hypervolume `{HV_RUN_BASE}` (the same normalisation, the base model's point as reference): "
                     f"{metrics[HV_RUN_BASE]:.4f}")
    if "vs_base" in metrics:
        ahead = [p for p in metrics["vs_base"] if p["along_preference_ci"][0] > 0]
        behind = [p for p in metrics["vs_base"] if p["along_preference_ci"][1] < 0]
        lines.append(f"against the base model along their own preference (paired by prompt, 95% interval): "
                     f"{len(ahead)} of {len(metrics['vs_base'])} models ahead, {len(behind)} behind")
    if metrics.get("earlier_stage"):
        stage = metrics["earlier_stage"]
        gains = [p for p in stage["pairs"] if p["gain_ci"][0] > 0]
        losses = [p for p in stage["pairs"] if p["gain_ci"][1] < 0]
        volume = (f"; the earlier stage's front above the same reference point: {stage[HV_RAW_REF]:.4g}"
                  if HV_RAW_REF in stage else "")
        lines.append(f"the final models against their earlier stage (stage 2 against stage 1), along each "
                     f"preference, paired by prompt: {len(gains)} of {len(stage['pairs'])} ahead, {len(losses)} "
                     f"behind (95% intervals){volume}")
    if "truncated_share" in metrics:
        shares = metrics["truncated_share"]
        lines.append("replies that hit max_new_tokens: " + ", ".join(f"{m} {v:.0%}" for m, v in shares.items()))
    if HV_RUN_WORST_SERVED in metrics:
        served = metrics["served"]
        lines.append(f"hypervolume `{HV_RUN_WORST_SERVED}` (the same frame, the {len(served)} served preferences "
                     f"added to the trained front): {metrics[HV_RUN_WORST_SERVED]:.4f}; served points between their "
                     f"neighbours on every objective: {sum(e['between_neighbours'] for e in served)} of {len(served)}, "
                     f"dominated by a trained point: {sum(e['dominated_by_trained'] for e in served)}")
    lines.append(f"collapse rate (aligned models): {metrics['collapse_rate']:.2%}")
    cost = metrics["cost"]
    counts = cost.get("counts")
    if counts:
        lines.append(f"work, in counts no hardware changes: {counts['sequences_trained']} sequences "
                     f"({counts['tokens_trained']} tokens) trained, {counts['replies_generated']} replies "
                     f"({counts['tokens_generated']} tokens) generated by the method; {counts['samples_scored']} "
                     f"offline and {counts['generated_samples_scored']} generated samples scored; evaluation "
                     f"{counts['evaluation_replies']} replies ({counts['evaluation_tokens']} tokens)")
    timings = [f"cost, wall seconds (GPU-seconds): training {_cost(cost['training'])}, the method's own generation "
               f"{_cost(cost['generation'])}; scoring of the offline data (shared by every method on these data, "
               f"not in the method's cost) {_cost(cost['scoring'])}; evaluation, held-out answers included (the same "
               f"protocol for every method, not in its cost) {_cost(cost['evaluation'])}",
               "wall seconds per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in metrics["wall_seconds"].items())]
    return [(line, "result") for line in lines] + [(line, TIMING) for line in timings]


def prompt_number(prompt_ids: pd.Series) -> pd.Series:
    """The sort key of test prompt ids ``p0``, ``p1``, ...: their number, so that ``p10`` comes after ``p9``."""
    return prompt_ids.str[1:].astype(int)


def _cost(line: dict) -> str:
    return f"{line['wall_seconds']:.0f} s ({line['gpu_seconds']:.0f})"
