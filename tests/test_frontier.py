"""``mnist-search frontier``: several budgets from one run, on real studies in SQLite, at tiny sizes
(600 training images, 500 validation images)."""

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
from typer.testing import CliRunner

from mnist_search.cli.app import app
from mnist_search.frontier.published import PUBLISHED, epoch_cap
from mnist_search.frontier.run import FrontierConfig, load_record, run_frontier
from mnist_search.search import records
from mnist_search.search.final import final_study_name, summarize_final
from mnist_search.search.final_time import incumbent

runner = CliRunner()
BUDGETS = (300, 700)


def config(tmp_path, data_dir, **kw) -> FrontierConfig:
    base = dict(
        budgets=BUDGETS,
        timeout=24.0,
        out=tmp_path / "fr",
        storage=f"sqlite:///{tmp_path}/f.db",
        data_dir=data_dir,
        train_subset=600,
        val_size=500,
        device="cpu",
        final_seeds=2,
        final_top=2,
        warm_start="none",
        artifacts=tmp_path / "art",
    )
    return FrontierConfig(**(base | kw))


def studies(cfg: FrontierConfig, budget: int) -> tuple[optuna.Study, optuna.Study]:
    name = f"{cfg.study_prefix}-{budget}"
    return (
        optuna.load_study(study_name=name, storage=cfg.storage),
        optuna.load_study(study_name=final_study_name(name, auto=True), storage=cfg.storage),
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
            cfg.final_seeds,
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
        plain = replace(cfg, final_top=top, final_incumbent=False)
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
        cfg.storage,
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
        str(cfg.artifacts),
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


def run(*args):
    return runner.invoke(app, ["frontier", *map(str, args)])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--budgets", "1000,abc"], "--budgets '1000,abc': must be positive whole numbers"),
        (["--budgets", "0"], "--budgets '0': must be positive whole numbers"),
        (["--budgets", ""], "--budgets '': must be positive whole numbers"),
        (["--budgets", "1000,1000"], "--budgets 1000,1000: a budget repeats"),
        (["--budgets", "100"], "--budgets 100 is below the smallest net"),
        (["--timeout", "-5"], "--timeout -5.0: must be a positive"),
        (["--timeout", "inf"], "--timeout inf: must be a positive"),
        (["--final-seeds", "0"], "--final-seeds 0"),
        (["--warm-start", "some"], "--warm-start 'some'; valid: found, documented, none"),
        (["--workers", "0"], "--workers 0: must be at least 1"),
        (["--search-epochs", "0"], "--search-epochs 0: must be at least 1"),
        (["--search-epochs", "10001"], "--search-epochs 10001: must be at most 10000"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--storage", "mysql://x"], "storage"),
        (["--target-accuracy", "100"], "--target-accuracy 100.0: must be a validation accuracy"),
        (["--target-accuracy", "nan"], "--target-accuracy nan: must be a validation accuracy"),
        (["--target-accuracy", "-1"], "--target-accuracy -1.0: must be a validation accuracy"),
        (["--final-augment", "heavy"], "--final-augment 'heavy'; valid: own (each finalist's"),
        (["--final-augment", "none "], "--final-augment 'none '; valid: own (each finalist's"),
    ],
)
def test_bad_frontier_options_are_one_line_and_write_nothing(tmp_path, args, message, data_dir):
    r = run("--out", tmp_path / "fr", "--data-dir", data_dir, *args)
    assert r.exit_code == 2, r.output
    assert message in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "fr").exists()


def test_a_frontier_out_that_is_a_file_is_refused(tmp_path, data_dir):
    f = tmp_path / "taken"
    f.write_text("x")
    r = run("--out", f, "--data-dir", data_dir)
    assert r.exit_code == 2 and "--out" in r.output and f.read_text() == "x"


def test_a_frontier_record_that_is_not_one_is_refused(tmp_path, data_dir):
    (tmp_path / "fr").mkdir()
    (tmp_path / "fr" / "frontier.json").write_text('{"rows": [{"budget": "x"}]}')
    r = run("--out", tmp_path / "fr", "--data-dir", data_dir, "--budgets", "300")
    assert r.exit_code == 2 and "not a frontier record" in r.output


def test_each_budget_searches_with_the_trial_length_asked_for(tmp_path):
    from mnist_search.frontier.published import epoch_cap
    from mnist_search.frontier.run import FrontierConfig

    cfg = FrontierConfig(budgets=(1000, 5000), out=tmp_path, search_epochs=2, device="cpu")
    for b in cfg.budgets:
        search = cfg.search(b, 60.0)
        assert search.protocol.epochs == 2 and search.protocol.reports == 16  # 1/16-epoch rungs
        assert search.final.max_epochs == epoch_cap(b) and search.run.device == "cpu"
    assert FrontierConfig(out=tmp_path).search(1000, 60.0).protocol.epochs == 1  # the default


def test_epoch_caps_follow_the_published_lengths():
    assert [epoch_cap(b) for b in (697, 1000, 2000, 5000, 10000, 25000)] == [
        100,
        100,
        60,
        30,
        20,
        20,
    ]


def _good_record() -> dict:
    row = dict(
        budget=300,
        study="frontier-300",
        n_params=290,
        architecture="1→4→4 k3",
        epochs=12,
        seeds=3,
        val_mean=97.1,
        val_std=0.2,
        test_mean=97.3,
        test_std=0.1,
        origin="sampled by this search",
        trials=40,
        wall_seconds=100.0,
        spec_file="fr/budget-300.json",
        best_sampled_val=95.0,
    )
    return {"budgets": [300], "study_prefix": "frontier", "rows": [row]}


def test_a_good_record_reads_back(tmp_path):
    (tmp_path / "frontier.json").write_text(json.dumps(_good_record()))
    assert load_record(tmp_path)[300].n_params == 290


def test_budgets_finished_with_another_final_augmentation_are_not_kept(tmp_path):
    """A row retrained with each recipe's own augmentation is no row of a --final-augment small
    run (nor the reverse): the run with the other setting retrains that budget."""
    (tmp_path / "frontier.json").write_text(json.dumps(_good_record()))
    assert load_record(tmp_path, "small") == {}
    body = {**_good_record(), "final_augment": "small"}
    (tmp_path / "frontier.json").write_text(json.dumps(body))
    assert load_record(tmp_path) == {} and load_record(tmp_path, "small")[300].n_params == 290
    # Each budget's search gets the setting, and its final stage a study of its own.
    from mnist_search.frontier.run import FrontierConfig

    search = FrontierConfig(budgets=(5000,), out=tmp_path, final_augment="small").search(5000, 60)
    assert search.final.augment_override == "small"


@pytest.mark.parametrize(
    "field, value",
    [
        ("budget", "300"),
        ("budget", True),
        ("n_params", 2.5),
        ("val_mean", None),
        ("study", 3),
        ("epochs", "12"),
        ("rows", None),
    ],
)
def test_a_record_with_a_wrong_field_type_is_one_line(tmp_path, field, value):
    body = _good_record()
    if field == "rows":
        body["rows"] = value
    else:
        body["rows"][0][field] = value
    (tmp_path / "frontier.json").write_text(json.dumps(body))
    from mnist_search.errors import UsageError

    with pytest.raises(UsageError, match="not a frontier record"):
        load_record(tmp_path)


def test_random_bytes_in_a_record_are_a_usage_error_or_a_record(tmp_path):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from mnist_search.errors import UsageError

    good = json.dumps(_good_record()).encode()

    @settings(max_examples=200, deadline=None)
    @given(st.integers(0, len(good) - 1), st.binary(min_size=0, max_size=4))
    def check(at, junk):
        (tmp_path / "frontier.json").write_bytes(good[:at] + junk + good[at + len(junk) :])
        try:
            rows = load_record(tmp_path)
        except UsageError as e:
            assert "\n" not in str(e)
        else:
            assert all(isinstance(r.budget, int) for r in rows.values())

    check()


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
    from mnist_search.frontier.outputs import figure_data

    data = figure_data(_rows())
    assert [c["n_params"] for c in data["chosen"]] == [952, 4870]
    assert len(data["published"]) == len(PUBLISHED)
    assert {d["label"] for d in data["documented"]} == {f"Exp{i}" for i in range(1, 7)}
    assert 480_176 in {d["n_params"] for d in data["documented"]}  # Exp1's true count
    assert data["budgets"] == [1000, 5000]


@pytest.mark.skipif(
    not (__import__("shutil").which("chromium")),
    reason="chromium not installed (.ci/run installs it)",
)
@pytest.mark.parametrize(
    "url", ["postgresql://u:secretpw@h/db", "postgresql://u@h/db?password=secretpw"]
)
def test_the_command_line_written_in_the_outputs_has_no_password(tmp_path, url):
    from mnist_search.frontier.outputs import write_outputs
    from mnist_search.frontier.run import FrontierOutcome

    cfg = FrontierConfig(out=tmp_path, storage=url)
    outcome = FrontierOutcome(cfg, rows=_rows(), wall_seconds=1200)
    for path in write_outputs(outcome, f"mnist-search frontier --storage {url} --budgets 1000"):
        text = path.read_text()
        assert "secretpw" not in text and "***" in text and "--budgets 1000" in text


def test_the_frontier_figure_draws_in_a_browser(tmp_path):
    import re
    import shutil

    from mnist_search.frontier.outputs import write_outputs
    from mnist_search.frontier.run import FrontierOutcome

    outcome = FrontierOutcome(FrontierConfig(out=tmp_path), rows=_rows(), wall_seconds=1200)
    _, page = write_outputs(outcome, "mnist-search frontier (test)")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=15000",
    ]
    dom = subprocess.run(
        [shutil.which("chromium"), *flags, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert 'class="main-svg"' in dom  # plotly drew the plot (the file itself has no svg)
    texts = set(re.findall(r"<text[^>]*>([^<]+)</text>", dom))
    # the chosen nets' labels, a published source, the write-up's experiments
    assert "1,000: 952 p., 60 ep." in texts and "5,000: 4,870 p., 30 ep." in texts, texts
    assert "ruslangrimov" in texts and "Exp5" in texts
    # one dotted line per budget, and points for every trace
    assert len(re.findall(r'<path[^>]*class="[^"]*"[^>]*stroke-dasharray', dom)) >= 2 or (
        dom.count('class="shape-group"') >= 1
    )
    assert dom.count('class="point"') >= 2 + len(PUBLISHED) + 6
