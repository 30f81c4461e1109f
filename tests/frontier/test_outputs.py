"""What `frontier` writes: the figure's data, the page drawn in a browser, no password in either."""

from __future__ import annotations

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
    shapes = figure(data).layout.shapes  # one dotted vertical line at each budget, no other
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


def test_the_frontier_figure_draws_in_a_browser(browser, tmp_path):
    import re

    from mnist_search.frontier.outputs import write_outputs
    from mnist_search.frontier.run import FrontierOutcome

    outcome = FrontierOutcome(FrontierConfig(out=tmp_path), rows=_rows(), wall_seconds=1200)
    _, page = write_outputs(outcome, "mnist-search frontier (test)")
    dom = dump_dom(page, tmp_path / "profile")
    assert 'class="main-svg"' in dom  # plotly drew the plot (the file itself has no svg)
    texts = set(re.findall(r"<text[^>]*>([^<]+)</text>", dom))
    # the chosen nets' labels, a published source, the write-up's experiments
    assert "1,000: 952 p., 60 ep." in texts and "5,000: 4,870 p., 30 ep." in texts, texts
    assert "ruslangrimov" in texts and "Exp5" in texts
    # one dotted line per budget (plotly draws each shape as a path with its data-index), and
    # points for every trace
    dotted = re.findall(r'<path data-index="(\d+)"[^>]*stroke-dasharray', dom)
    assert sorted(map(int, dotted)) == [0, 1], dotted
    assert dom.count('class="point"') >= 2 + len(PUBLISHED) + 6
