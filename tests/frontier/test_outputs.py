"""What `frontier` writes: the figure's data, the page drawn in a browser, no password in either."""

from __future__ import annotations

import dataclasses

import pytest

from mnist_search.catalog.published import PUBLISHED
from mnist_search.frontier.run import FrontierConfig
from mnist_search.search.config import SearchConfig
from mnist_search.testing import dump_dom


def _rows():
    from mnist_search.frontier.run import FrontierRow

    return [
        FrontierRow(
            budget=b,
            study=f"frontier-{b}",
            n_params=n,
            architecture="1→4→8 k3 pool@1 bn | gap",
            epochs=e,
            seeds=3,
            val_mean=v,
            val_std=0.1,
            test_mean=t,
            test_std=0.05,
            origin="sampled by this search",
            trials=30,
            wall_seconds=600.0,
            spec_file=f"fr/budget-{b}.json",
            best_sampled_val=None,
        )
        for b, n, e, v, t in ((1000, 952, 60, 98.5, 98.6), (5000, 4870, 30, 99.0, 99.1))
    ]


def test_the_figure_data_holds_every_point():
    from mnist_search.frontier.outputs import figure, figure_data

    data = figure_data(_rows())
    assert [c["n_params"] for c in data["chosen"]] == [952, 4870]
    assert len(data["published"]) == len(PUBLISHED)
    assert {d["label"] for d in data["documented"]} == {f"Exp{i}" for i in range(1, 7)}
    assert 480_176 in {d["n_params"] for d in data["documented"]}  # Exp1's true count
    assert data["budgets"] == [1000, 5000]
    fig = figure(data)
    # Test error on log axes, the write-up's six in a panel of their own.
    assert fig.layout.yaxis.type == "log" and fig.layout.xaxis.type == "log"
    assert fig.layout.yaxis2.type == "log" and {t.xaxis for t in fig.data} == {"x", "x2"}
    assert [t.y[0] for t in fig.data][0] == pytest.approx(100 - 98.6)
    shapes = fig.layout.shapes  # one dotted vertical line at each budget, no other
    assert sorted((s.x0, s.x1, s.line.dash) for s in shapes) == [
        (1000, 1000, "dot"),
        (5000, 5000, "dot"),
    ]


@pytest.mark.parametrize(
    "url", ["postgresql://u:secretpw@h/db", "postgresql://u@h/db?password=secretpw"]
)
def test_the_command_line_written_in_the_outputs_has_no_password(tmp_path, url):
    from mnist_search.frontier.outputs import write_outputs
    from mnist_search.frontier.run import FrontierOutcome

    cfg = FrontierConfig(out=tmp_path, search=SearchConfig(storage=url))
    outcome = FrontierOutcome(cfg, rows=_rows(), wall_seconds=1200)
    for path in write_outputs(outcome, f"mnist-search frontier --storage {url} --budgets 1000"):
        text = path.read_text()
        assert "secretpw" not in text and "***" in text and "--budgets 1000" in text


# Run in the page once plotly has drawn it: every pair of drawn labels (point labels, legend,
# titles) whose boxes overlap, written into the DOM for the test to read.
OVERLAPS = """<script>setTimeout(function () {
  var els = Array.from(document.querySelectorAll(
    "g.textpoint text, text.legendtext, text.gtitle, text.xtitle, text.ytitle, " +
    "g.annotation-text-g text"));
  var boxes = els.map(function (e) { return e.getBoundingClientRect(); });
  var pairs = [];
  for (var i = 0; i < els.length; i++) for (var j = i + 1; j < els.length; j++) {
    var a = boxes[i], b = boxes[j];
    if (a.width && b.width && a.left < b.right && b.left < a.right && a.top < b.bottom &&
        b.top < a.bottom) pairs.push(els[i].textContent + " / " + els[j].textContent);
  }
  document.body.setAttribute("data-labels", String(els.length));
  document.body.setAttribute("data-overlaps", JSON.stringify(pairs));
}, 1000);</script>"""


def _five_budgets():
    """A frontier like the real one: five budgets, their nets near the published ones."""
    rows = _rows()
    values = ((1000, 952, 100, 98.3), (2000, 1990, 60, 98.95), (5000, 4870, 30, 99.2),
              (10000, 9572, 20, 99.45), (25000, 24849, 20, 99.6))  # fmt: skip
    return [
        dataclasses.replace(
            rows[0], budget=b, n_params=n, epochs=e, test_mean=t, val_mean=t - 0.3, test_std=0.06
        )
        for b, n, e, t in values
    ]


def test_the_frontier_figure_draws_in_a_browser(browser, tmp_path):
    """Drawn in Chromium at 1300×900: the chosen nets, each published source, the write-up's
    six in their own panel, a dotted line per budget, and no two labels on top of each other."""
    import html
    import json
    import re

    from mnist_search.frontier.outputs import write_outputs
    from mnist_search.frontier.run import FrontierOutcome

    outcome = FrontierOutcome(FrontierConfig(out=tmp_path), rows=_five_budgets(), wall_seconds=1)
    _, page = write_outputs(outcome, "mnist-search frontier (test)")
    page.write_text(page.read_text().replace("</body>", OVERLAPS + "</body>"))
    dom = dump_dom(page, tmp_path / "profile", size=(1300, 900))
    assert 'class="main-svg"' in dom  # plotly drew the plot (the file itself has no svg)
    texts = set(re.findall(r"<text[^>]*>([^<]+)</text>", dom))
    assert {"1,000", "2,000", "5,000", "10,000", "25,000"} <= texts, texts
    assert {f"Exp{i}" for i in range(1, 7)} <= texts
    assert {
        "published: ruslangrimov/mnist-minimal-model",
        "published: JoshWarn/Parameter-Efficient-MNIST",
    } <= texts
    assert "test error (%), log" in texts
    # one dotted line per budget (plotly draws each shape as a path with its data-index)
    dotted = re.findall(r'<path data-index="(\d+)"[^>]*stroke-dasharray', dom)
    assert sorted(map(int, dotted)) == list(range(5)), dotted
    assert dom.count('class="point"') >= 5 + len(PUBLISHED) + 6
    labels = int(re.search(r'data-labels="(\d+)"', dom).group(1))
    overlaps = json.loads(html.unescape(re.search(r'data-overlaps="([^"]*)"', dom).group(1)))
    assert labels >= 5 + 6 + 4 and overlaps == [], overlaps
