"""`frontier` on real studies in SQLite at tiny sizes (600 training images, 500 validation images):
every budget gets a net chosen on validation; a killed run resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import optuna
import pytest

from mnist_search.catalog.published import PUBLISHED, epoch_cap
from mnist_search.frontier.run import FrontierConfig, load_record, run_frontier
from mnist_search.search import records
from mnist_search.search.config import FinalSettings, SearchConfig
from mnist_search.search.final import final_study_name, summarize_final
from mnist_search.search.final_time import incumbent
from mnist_search.training.protocol import Protocol
from mnist_search.training.settings import RunSettings

BUDGETS = (300, 700)


def config(tmp_path, data_dir, **kw) -> FrontierConfig:
    search = SearchConfig(
        protocol=Protocol(train_subset=600, val_size=500),
        storage=f"sqlite:///{tmp_path}/f.db",
        run=RunSettings(device="cpu", data_dir=data_dir),
        warm_start="none",
        artifacts=tmp_path / "art",
        final=FinalSettings(seeds=2, top=2, incumbent=True),
    )
    base = dict(search=search, budgets=BUDGETS, timeout=24.0, out=tmp_path / "fr")
    return FrontierConfig(**(base | kw))


def studies(cfg: FrontierConfig, budget: int) -> tuple[optuna.Study, optuna.Study]:
    name = f"{cfg.study_prefix}-{budget}"
    return (
        optuna.load_study(study_name=name, storage=cfg.search.storage),
        optuna.load_study(study_name=final_study_name(name, auto=True), storage=cfg.search.storage),
    )


@pytest.mark.slow
def test_each_budget_gets_a_net_within_it_chosen_on_validation(tmp_path, data_dir):
    from mnist_search.frontier.outputs import markdown, write_outputs

    # Each budget's final stage retrains its finalists and, after the first, the incumbent: time
    # enough for all of them on a loaded 2-core machine.
    cfg = config(tmp_path, data_dir, timeout=40.0)
    out = run_frontier(cfg)
    assert [r.budget for r in out.rows] == list(BUDGETS) and not out.missing
    for row in out.rows:
        search, final = studies(cfg, row.budget)
        # The budget is a hard cap in the search and in the final stage.
        for study in (search, final):
            assert all(
                (r.n_params or 0) <= row.budget
                for r in map(records.TrialRecord.of, study.get_trials())
            )
        assert row.n_params <= row.budget and row.epochs <= epoch_cap(row.budget)
        # The chosen candidate is the best by mean validation accuracy of those retrained.
        sources = {r.source_trial for r in records.complete(final)}
        # The best net the warm start queued (here, from the second budget on, the smaller
        # budget's choice widened) is retrained beside the finalists (the default).
        start = incumbent(search)
        if row.budget != min(BUDGETS):
            assert start is not None and start.number in sources
        cands = summarize_final(
            final,
            [records.TrialRecord.of(search.trials[n]) for n in sorted(sources)],
            cfg.final.seeds,
        )
        assert row.val_mean == max(c.val_stat.mean for c in cands if len(c.seeds) == 2)
        body = json.loads((tmp_path / "fr" / f"budget-{row.budget}.json").read_text())
        assert body["n_params"] == row.n_params and body["budget"] == row.budget
        assert body["result"]["val_mean"] == row.val_mean
    # The net chosen at 300 was queued, widened, at 700.
    warm = [records.TrialRecord.of(t).warm_start for t in studies(cfg, 700)[0].get_trials()]
    assert any(w and w.endswith("budget-300.json") for w in warm)
    md, page = write_outputs(out, "mnist-search frontier (test)")
    text = md.read_text()
    assert "| 300 |" in text and "| 700 |" in text and "mnist-search frontier (test)" in text
    assert "then its 2 finalists, and the best net it started from" in text
    for top, words in ((1, "then its finalist was retrained"), (2, "2 finalists were retrained")):
        final = replace(cfg.final, top=top, incumbent=False)
        plain = replace(cfg, search=replace(cfg.search, final=final))
        assert words in markdown(replace(out, config=plain), "mnist-search frontier (test)")
    assert all(p.source in text for p in PUBLISHED)
    html = page.read_text()
    assert "plot-frontier" in html and "ruslangrimov" in html and "Exp5" in html

    # --target-accuracy on the finished run (nothing trains again): the fewest-parameter net of
    # every budget's retrained finalists whose validation mean reaches it, judged on validation.
    pool = []
    for b in BUDGETS:
        search, final = studies(cfg, b)
        sources = sorted({r.source_trial for r in records.complete(final)})
        pool += [
            c
            for c in summarize_final(
                final, [records.TrialRecord.of(search.trials[n]) for n in sources], 2
            )
            if len(c.seeds) == 2
        ]
    vals = sorted(c.val_stat.mean for c in pool)
    target = vals[len(vals) // 2]
    want = min((c for c in pool if c.val_stat.mean >= target), key=lambda c: c.n_params)
    hit = run_frontier(replace(cfg, target_accuracy=target))
    assert hit.rows == out.rows and hit.target.pool == len(pool)
    assert hit.target.chosen.n_params == want.n_params
    assert hit.target.chosen.val_stat.mean >= target
    spec = json.loads(hit.target.spec_file.read_text())
    assert spec["n_params"] == want.n_params and spec["target_accuracy"] == target
    assert spec["protocol"] == json.loads((cfg.out / "budget-300.json").read_text())["protocol"]
    md, _ = write_outputs(hit, "mnist-search frontier (test)")
    assert f"Target {target:g}% validation" in md.read_text()
    miss = run_frontier(replace(cfg, target_accuracy=min(99.99, vals[-1] + 0.01)))
    assert miss.target.chosen is None and miss.target.best_val == vals[-1]
    assert not list((tmp_path / "fr").glob(f"target-{min(99.99, vals[-1] + 0.01):g}.json"))


@pytest.mark.slow
def test_a_killed_frontier_resumes_and_keeps_its_finished_budgets(tmp_path, data_dir):
    cfg = config(tmp_path, data_dir, timeout=30.0)
    cmd = [
        sys.executable,
        "-m",
        "mnist_search",
        "frontier",
        "--budgets",
        ",".join(map(str, BUDGETS)),
        "--timeout",
        "30",
        "--out",
        str(cfg.out),
        "--storage",
        cfg.search.storage,
        "--data-dir",
        str(data_dir),
        "--train-subset",
        "600",
        "--val-size",
        "500",
        "--device",
        "cpu",
        "--final-seeds",
        "2",
        "--warm-start",
        "none",
        "--artifacts",
        str(cfg.search.artifacts),
        "-q",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    record = cfg.out / "frontier.json"
    end = time.time() + 120
    while not record.exists() and proc.poll() is None and time.time() < end:
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)  # mid-way through the second budget
    proc.wait()
    first = load_record(cfg.out)
    assert list(first) == [300]
    trials_before = len(studies(cfg, 300)[0].get_trials())
    out = run_frontier(cfg)
    assert [r.budget for r in out.rows] == list(BUDGETS)
    assert out.rows[0] == first[300]  # the same choice, not searched again
    assert len(studies(cfg, 300)[0].get_trials()) == trials_before
    assert load_record(cfg.out)[700] == out.rows[1]
    again = run_frontier(cfg)  # everything finished: nothing trained, the same rows
    assert again.rows == out.rows


@pytest.mark.slow
def test_a_budget_left_no_time_is_a_missing_row_not_an_error(tmp_path, data_dir):
    # A twentieth of a second: reading the data alone takes the first budget past it, as
    # budgets can run past their share.
    out = run_frontier(config(tmp_path, data_dir, timeout=0.05))
    assert "no time left" in out.missing[700] and not out.interrupted
    assert [r.budget for r in out.rows] in ([300], [])


def test_each_budget_searches_with_the_trial_length_asked_for(tmp_path):
    from mnist_search.catalog.published import epoch_cap
    from mnist_search.frontier.run import FrontierConfig

    cfg = FrontierConfig(
        search=SearchConfig(protocol=Protocol(epochs=2), run=RunSettings(device="cpu")),
        budgets=(1000, 5000),
        out=tmp_path,
    )
    for b in cfg.budgets:
        search = cfg.search_for(b, 60.0)
        assert search.protocol.epochs == 2 and search.protocol.reports == 16  # 1/16-epoch rungs
        assert search.final.max_epochs == epoch_cap(b) and search.run.device == "cpu"
    assert FrontierConfig(out=tmp_path).search_for(1000, 60.0).protocol.epochs == 1  # the default


def test_confirming_is_inside_the_time_limit(tmp_path):
    from mnist_search.frontier.run import confirm_share
    from mnist_search.search.config import SEARCH_SHARE

    cfg = FrontierConfig(out=tmp_path)
    assert confirm_share(cfg) == 1.0  # without --confirm a budget's share is all its search's
    # Two finalists and the incumbent: the final stage's part of the time trains three
    # candidates' seeds, the confirmation one more's.
    share = confirm_share(replace(cfg, confirm=True))
    assert share == pytest.approx(1 / (1 + (1 - SEARCH_SHARE) / 3)) and 0.8 < share < 0.85
    alone = replace(cfg, confirm=True, search=SearchConfig(final=FinalSettings(seeds=3, top=1)))
    assert confirm_share(alone) == pytest.approx(1 / (2 - SEARCH_SHARE))


def test_epoch_caps_follow_the_published_lengths():
    assert [epoch_cap(b) for b in (697, 1000, 2000, 5000, 10000, 25000)] == [
        100,
        100,
        60,
        30,
        20,
        20,
    ]
