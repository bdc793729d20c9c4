"""The HTML report and compare page: self-contained (plotly.js inline once, nothing fetched), byte-deterministic,
responses escaped, one front point per trained model with the base and served points in their own traces; then the
page opened from ``file://`` in headless Chromium with every other request refused: no console or page errors.

Synthetic metrics and scores, no model: seconds. The browser test skips, saying why, without Chromium or playwright.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pandas as pd
import pytest

from paretohqd.config import CollapseConfig
from paretohqd.evaluate.collapse import CollapseDetector
from paretohqd.evaluate.html import FRONT_DIV, SelectionView, front_figure, report_page
from paretohqd.evaluate.metrics import summarise
from paretohqd.pareto import candidate_pool, select_from_pool
from paretohqd.pipeline.select import drawn_selection

from .test_compare import constant, fake_run

NAMES = ["helpful", "harmless"]
HOSTILE = "<script>alert(1)</script> & \"quotes\""
TRAINED = 5
SERVED = 2


def synthetic_run(names=NAMES, prompts=6, samples=3000, seed=0):
    """(metrics, scores frame, selection view) shaped like a small ParetoHqD run's: ``TRAINED`` trained models on a
    grid, a base model, ``SERVED`` served preferences, a scored cloud with its pool and per-preference choices."""
    rng = np.random.default_rng(seed)
    m = len(names)
    weights = np.linspace(0.0, 1.0, TRAINED)
    def vector(w):  # a preference over the first two objectives (the only one, with one)
        return [float(w), float(1 - w)] + [0.0] * (m - 2) if m > 1 else [1.0]

    grid = [vector(w) for w in weights]
    models = [{"name": f"pref_{i:02d}", "weights": w} for i, w in enumerate(grid)] + [{"name": "base",
                                                                                      "weights": None}]
    served = [{"model": f"served_{i:02d}", "weights": vector(0.1 + 0.4 * i),
               "mode": "interpolate", "from": [{"model": "pref_00", "weights": grid[0], "weight": 0.5},
                                               {"model": "pref_01", "weights": grid[1], "weight": 0.5}]}
              for i in range(SERVED)]
    rows = []
    for model in [m_["name"] for m_ in models] + [s["model"] for s in served]:
        for p in range(prompts):
            rows.append({"model": model, "prompt_id": f"p{p}", "prompt": f"Question {p}: how are you?",
                         "response": HOSTILE if (model, p) == ("pref_01", 0) else f"{model} answers prompt {p} "
                                                                                  "politely and well.",
                         **{name: float(rng.normal()) for name in names}})
    scored = pd.DataFrame(rows)
    detector = CollapseDetector(CollapseConfig())
    scored["degenerate"] = detector.is_degenerate(scored["response"].tolist())
    _, metrics = summarise(scored, models, names, detector)
    means = scored.groupby("model")[names].mean()
    collapse = scored.groupby("model")["degenerate"].mean()
    metrics["served"] = [{**s, "mean_rewards": means.loc[s["model"]].tolist(),
                          "collapse_rate": float(collapse.loc[s["model"]])} for s in served]
    line = {"wall_seconds": 12.0, "gpu_seconds": 0.0, "stages": {}}
    metrics.update(method="ParetoHqD", seed=0, wall_seconds={"select": 3.0, "total": 12.0},
                   cost=dict.fromkeys(("training", "generation", "scoring", "evaluation"), line))

    points = rng.normal(size=(samples, m))
    pool = candidate_pool(points, min_pool=200)
    entries = []
    for index, chosen in enumerate(select_from_pool(points, pool, grid, k=40)):
        entry = chosen.to_dict()
        entry["rows"] = entry.pop("indices")  # as pipeline.select.run_ray records it
        entries.append((f"pref_{index:02d}.json", entry))
    z, pool, chosen = drawn_selection(points, pool.to_dict(), entries)
    view = SelectionView("Stage-1 selection", names, z, points, np.array([f"s{i}" for i in range(samples)]),
                         pool.indices, pool.num_layers, chosen)
    return metrics, scored, view


@pytest.fixture(scope="module")
def run():
    return synthetic_run()


@pytest.fixture(scope="module")
def page(run):
    metrics, scored, view = run
    return report_page(metrics, scored, 4, [view])


def test_page_is_self_contained_with_plotly_once(page):
    tags = re.findall(r"<(?:script|link|img|iframe)\b[^>]*>", page)
    assert not [t for t in tags if re.search(r"(src|href)\s*=", t)], "a script, link or image loads a file"
    # plotly.js inline, once (with the first figure): its banner and its config script appear once
    assert len(re.findall(r"\* plotly\.js v\d", page)) == 1 and page.count("window.PlotlyConfig") == 1
    assert f'id="{FRONT_DIV}"' in page and 'id="selection-0"' in page
    assert '"displaylogo": false' in page


def test_page_is_deterministic(run, page):
    metrics, scored, view = synthetic_run()
    assert report_page(metrics, scored, 4, [view]) == page


def test_responses_are_escaped(page):
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;" in page


def test_timing_lines_are_marked_and_alone(page):
    """tests/test_kill_resume.py drops the lines that measure seconds: every such number is on one of them."""
    timing = [line for line in page.splitlines() if 'class="timing"' in line]
    assert len(timing) == 2 and all(line.startswith("<li") and line.endswith("</li>") for line in timing)
    assert "wall seconds per stage" in timing[1]


def test_samples_table_has_the_first_prompts_and_every_model(run, page):
    _metrics, _, _ = run
    table = page[page.index('<div class="samples">'):]
    assert table.count("<tr><td class=\"prompt\">") == 4  # the first 4 of 6 prompts, each once
    header = table[:table.index("</thead>")]
    for model in ["base"] + [f"pref_{i:02d}" for i in range(TRAINED)] + [f"served_{i:02d}" for i in range(SERVED)]:
        assert f"<th>{model}<br>" in header
    assert header.index("<th>base<br>") < header.index("<th>pref_00<br>") < header.index("<th>served_00<br>")
    assert '<span class="flag">degenerate</span>' in table  # "<script>alert(1)</script> ..." is too short


@pytest.mark.parametrize("m", [1, 2, 3])
def test_front_figure_one_point_per_trained_model_per_panel(m):
    names = ["helpful", "harmless", "concise"][:m]
    metrics, _, _ = synthetic_run(names=names, samples=300)
    figure = front_figure(metrics)
    panels = max(1, m * (m - 1) // 2)
    by_group = {}
    for trace in figure.data:
        by_group.setdefault(trace.legendgroup, []).append(trace)
    assert {group: len(traces) for group, traces in by_group.items()} == {"trained": panels, "base": panels,
                                                                          "served": panels}
    assert all(len(t.x) == TRAINED for t in by_group["trained"]) and all(len(t.x) == 1 for t in by_group["base"])
    assert all(len(t.x) == SERVED for t in by_group["served"])
    assert re.search(r"pref_00 \([0-9, ]+\) &times; 0.50", by_group["served"][0].text[0])
    assert sum(t.showlegend for t in figure.data) == 3  # one legend entry per kind


def test_method_without_selection_shows_the_cloud_alone(run):
    metrics, scored, view = run
    cloud = SelectionView("Scored offline data", NAMES, view.raw, view.raw, view.sample_ids)
    without_served = {key: value for key, value in metrics.items() if key != "served"}
    page = report_page(without_served, scored[~scored["model"].str.startswith("served")], 2, [cloud])
    assert "raw reward" in page and "Pareto layers" not in page and "served_00" not in page


def test_compare_writes_an_html_page(tmp_path):
    from paretohqd.cli import main

    ours = fake_run(tmp_path, "a", "ParetoHqD", constant([[0.0, 4.0], [2.0, 3.0], [4.0, 0.0]]))
    theirs = fake_run(tmp_path, "b", "RiC", constant([[1.0, 2.0], [3.0, 1.0]]))
    assert main(["compare", ours, theirs, "--output", str(tmp_path / "cmp"), "--bootstrap", "50"]) == 0
    page = (tmp_path / "cmp" / "compare.html").read_text()
    assert page.count("window.PlotlyConfig") == 1 and 'id="fronts"' in page
    assert "<th>HV [95% CI]</th>" in page and "<td>RiC</td>" in page and "shared normalisation" in page
    assert main(["compare", ours, theirs, "--output", str(tmp_path / "again"), "--bootstrap", "50"]) == 0
    assert (tmp_path / "again" / "compare.html").read_text() == page


# ------------------------------------------------------------------------------------------------- the browser


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no Chromium on PATH (`make test` installs Debian's `chromium` where apt-get is usable)")
    return path


def test_page_renders_offline_in_headless_chromium(tmp_path, run, page):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")
    executable = _chromium()
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    problems, fetched = [], []
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu"])
        except Exception as exc:  # noqa: BLE001 (a browser that does not start here is the machine's)
            pytest.skip(f"{executable} does not start under playwright: {str(exc).splitlines()[0]}")
        try:
            context = browser.new_context()
            # offline: anything but the file itself is refused, and recorded
            context.route(re.compile(r"^(?!file:).*"), lambda route: (fetched.append(route.request.url),
                                                                      route.abort()))
            tab = context.new_page()
            tab.on("console", lambda message: message.type == "error" and problems.append(message.text))
            tab.on("pageerror", lambda error: problems.append(str(error)))
            tab.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
            tab.goto(path.as_uri(), wait_until="load")
            tab.wait_for_function(f"document.getElementById('{FRONT_DIV}')._fullData !== undefined "
                                  "&& document.getElementById('selection-0')._fullData !== undefined",
                                  timeout=30_000)
            traces = tab.evaluate(f"""() => document.getElementById('{FRONT_DIV}')._fullData.map(t => (
                {{group: t.legendgroup, points: t.x.length, panel: t.xaxis}}))""")
            rendered = tab.evaluate(f"document.querySelectorAll('#{FRONT_DIV} .scatterlayer path.point').length")
            hover = tab.evaluate("document.getElementById('selection-0')._fullData"
                                 ".filter(t => t.legendgroup === 'pref:0' && t.mode === 'markers')"
                                 ".map(t => [t.text[0], t.customdata[0].length])")
        finally:
            browser.close()
    assert not problems and not fetched, (problems, fetched)
    by_group = {}
    for trace in traces:
        by_group.setdefault(trace["group"], []).append(trace["points"])
    assert by_group == {"trained": [TRAINED], "base": [1], "served": [SERVED]}
    assert rendered == TRAINED + 1 + SERVED  # every point drawn as an SVG marker
    assert hover == [["s" + hover[0][0][1:], 1 + len(NAMES)]]  # sample id as text; layer and raw scores
