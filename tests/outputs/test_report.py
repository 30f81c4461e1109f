"""`report` on a real (tiny) study: its data, its HTML (every value escaped), drawn in a browser."""

from dataclasses import fields

import optuna
from optuna.distributions import IntDistribution
from optuna.trial import create_trial
from typer.testing import CliRunner

from mnist_search.cli.app import app
from mnist_search.outputs.report_data import (
    accuracy_points,
    documented_points,
    learning_curves,
    pareto_front,
    report_data,
)
from mnist_search.replay.summary import ReplayRow
from mnist_search.search.storage import open_storage
from mnist_search.search.study import open_study
from mnist_search.stats import Stat
from mnist_search.testing import dump_dom, screenshot
from mnist_search.training.protocol import Protocol


def test_report_escapes_every_value(tmp_path):
    from mnist_search.outputs.report import write_report

    study = open_study(open_storage(f"sqlite:///{tmp_path}/h.db"), "h", 5000, Protocol())
    study.add_trial(
        create_trial(
            value=90.0,
            params={"x": 1},
            distributions={"x": IntDistribution(0, 2)},
            user_attrs={
                "n_params": 100,
                "batch_size": "<script>alert(1)</script>",
                "architecture": "<b>net</b>",
                "training": {"optimizer": "<i>sgd</i>"},
            },
        )
    )
    # and a final stage that retrained it, under a hostile name too
    final = optuna.create_study(
        storage=f"sqlite:///{tmp_path}/h.db", study_name="<u>h</u>-final", direction="maximize"
    )
    final.add_trial(
        create_trial(
            value=91.0,
            user_attrs={
                "source_trial": 0,
                "seed": 0,
                "epochs": 2,
                "test_accuracy": 90.5,
                "spec": {"x": "<s>"},
                "training": {},
            },
        )
    )
    write_report(study, tmp_path / "r.html", final=final)
    text = (tmp_path / "r.html").read_text()
    tables = text[text.index("<h2>Final stage</h2>") :]
    assert tables.count('class="final-row"') == 1 and "<td>chosen</td>" in tables
    assert "<u>h</u>" not in tables and "&lt;u&gt;h&lt;/u&gt;-final" in tables
    assert "<script>alert" not in tables and "&lt;script&gt;" in tables
    assert "<b>net</b>" not in tables and "<i>sgd</i>" not in tables


runner = CliRunner()


def test_pareto_front():
    pts = [
        {"n_params": n, "val": v}
        for n, v in [(100, 90.0), (200, 89.0), (300, 95.0), (300, 94.0), (400, 95.0), (500, 97.0)]
    ]
    assert [(p["n_params"], p["val"]) for p in pareto_front(pts)] == [
        (100, 90.0),
        (300, 95.0),
        (500, 97.0),
    ]
    assert pareto_front([]) == []


def test_documented_points_use_true_counts_and_replays():
    empty = {f.name: None for f in fields(ReplayRow)}
    row = empty | {"experiment": 3, "test_accuracy": Stat(93.0, 0.5, 3), "seeds": [0, 1, 2]}
    docs = documented_points([ReplayRow(**row)])
    by = {d["experiment"]: d for d in docs}
    assert by[1]["n_params"] == 480_176 and by[1]["documented_test"] == 91.73
    assert by[3]["measured_test"] == 93.0 and by[3]["seeds"] == 3
    assert by[5]["measured_test"] is None


def test_report_data_from_a_real_study(study):
    data = report_data(study)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(data["points"]) == len(done) >= 1
    assert data["budget"] == 20000 and all(p["n_params"] <= 20000 for p in data["points"])
    assert data["front"][-1]["val"] == max(p["val"] for p in data["points"])
    curves = learning_curves(study)
    assert {c["state"] for c in curves} <= {"COMPLETE", "PRUNED"}
    assert all(len(c["steps"]) == len(c["values"]) >= 1 for c in curves)
    assert accuracy_points(study) == data["points"]


def test_report_html(in_study_dir):
    r = runner.invoke(app, ["report", "--study-name", "budget-20000", "--out", "r.html"])
    assert r.exit_code == 0, r.output
    assert "1 replayed experiments" in r.stdout
    text = (in_study_dir / "r.html").read_text()
    for fig in ("accuracy", "history", "importances", "curves"):
        assert f'id="plot-{fig}"' in text
    assert "Pareto front" in text and "budget 20,000" in text and "Exp1" in text
    # Self-contained: plotly.js is inline and nothing is fetched.
    assert "<script src=" not in text and len(text) > 3_000_000


def test_report_draws_in_a_browser(study, browser, in_study_dir, tmp_path):
    runner.invoke(app, ["report", "--study-name", "budget-20000", "--out", "r.html"])
    page = in_study_dir / "r.html"
    dom = dump_dom(page, tmp_path / "profile")
    # plotly adds an <svg class="main-svg"> to each plot it draws; the raw file has none.
    assert dom.count('class="main-svg"') >= 4 * 2
    # Every label is drawn at the default size: the budget line's, the replayed experiment's,
    # and one tick label per bar of the importances chart (none skipped for lack of room).
    import re

    texts = set(re.findall(r"<text[^>]*>([^<]+)</text>", dom))
    assert "budget 20,000" in texts and "Exp3 replayed" in texts
    part = dom[dom.index('id="plot-importances"') : dom.index('id="plot-curves"')]
    ticks = set(re.findall(r'class="ytick"><text[^>]*>([^<]+)</text>', part))
    wanted = set(optuna.importance.get_param_importances(study))
    assert wanted and ticks >= wanted, wanted - ticks
    shot = screenshot(page, tmp_path / "profile", tmp_path / "shot.png", (1200, 1800))
    from PIL import Image, ImageStat

    img = Image.open(shot).convert("L")
    assert img.size == (1200, 1800)
    assert ImageStat.Stat(img).stddev[0] > 10  # not a blank page
