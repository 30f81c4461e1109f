"""`benchmarks/accuracy_page.py` writes the results page from one run: each verdict follows the
exact mean and the seeds' spread, fresh seeds can only take a row down, and the run's own table
is copied as the records test reads it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "accuracy_page.py"


def _page_module():
    spec = importlib.util.spec_from_file_location("accuracy_page", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "mean, std, says",
    [
        (99.6500, 0.03, "+0.0500: **above**"),
        (99.6233, 0.055, "less than the spread: **level**"),
        (99.5900, 0.02, "**missed**"),
        (99.5950, 0.02, "level within the spread"),
        (99.6000, 0.05, "+0.0000, less than the spread: **level**"),
    ],
)
def test_a_verdict_follows_the_exact_mean(mean, std, says):
    assert says in _page_module().against(mean, std, 99.60)


def test_fresh_seeds_below_the_goal_take_a_row_down():
    m = _page_module()
    body = {"result": {"test_mean": 99.70, "test_std": 0.02}, "epochs": 20}
    assert "**above**" in m.verdict(body, 99.60, 20, None)
    said = m.verdict(body, 99.60, 20, {"test_mean": 99.55, "test_std": 0.03})
    assert "not above (both seed sets must be)" in said
    assert "does not count" in m.verdict(body | {"epochs": 30}, 99.60, 20, None)


def test_the_page_is_built_from_a_run_folder(tmp_path):
    from mnist_search.frontier.outputs import markdown
    from mnist_search.frontier.run import FrontierConfig, FrontierOutcome, FrontierRow

    run = tmp_path / "2026-12-07-frontier"
    run.mkdir()
    rows = []
    for b, n, t in ((1000, 952, 98.81), (25000, 24849, 99.6233)):
        spec = {
            "n_params": n, "epochs": 20, "origin": "sampled by this search",
            "result": {"val_mean": t - 0.3, "test_mean": t, "test_std": 0.05},
        }  # fmt: skip
        (run / f"budget-{b}.json").write_text(json.dumps(spec))
        rows.append(
            FrontierRow(
                budget=b, study=f"frontier-{b}", n_params=n, architecture="1→4 k3 | gap",
                epochs=20, seeds=3, val_mean=t - 0.3, val_std=0.1, test_mean=t, test_std=0.05,
                origin="sampled by this search", trials=9, wall_seconds=60.0,
                spec_file=f"somewhere/budget-{b}.json",
            )
        )  # fmt: skip
    (run / "frontier.json").write_text(json.dumps({"rows": [r.__dict__ for r in rows]}))
    outcome = FrontierOutcome(FrontierConfig(out=run), rows=rows, wall_seconds=1)
    (run / "frontier.md").write_text(markdown(outcome, "mnist-search frontier"))
    text = _page_module().page(run, None)
    assert "| 25,000 | ≥ 99.60 | 24,849 p., 20 ep." in text and "99.6233 (0.050)" in text
    assert "**level**" in text and "| 10,000 | ≥ 99.50 | no row |" in text
    assert "| 1,000 | ≥ 98.80 | 952 p." in text and "+0.0100, less than the spread" in text
    assert f"From `runs/{run.name}/frontier.md`:" in text and "| 24,849 |" in text
    assert "ruslangrimov/mnist-minimal-model" in text
