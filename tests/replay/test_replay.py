"""Replaying the documented experiments as fixed trials, and checking the write-up's findings."""

import json
from dataclasses import fields

import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from mnist_search.catalog.experiments import PROTOCOL_NAME, get_experiment
from mnist_search.cli.app import app
from mnist_search.data.dataset import make_splits
from mnist_search.replay.run import enqueue_replay
from mnist_search.replay.summary import ReplayRow, findings, summarize
from mnist_search.search.objective import Objective
from mnist_search.search.storage import open_storage
from mnist_search.search.study import open_study
from mnist_search.search.warmstart import documented_params
from mnist_search.stats import Stat
from mnist_search.training.protocol import Protocol

runner = CliRunner()

TINY = ["--train-subset", "300", "--val-size", "1000", "--device", "cpu"]


@pytest.mark.slow
def test_enqueued_experiments_train_with_their_fixed_params(tmp_path, mnist):
    protocol = Protocol(epochs=1, train_subset=300, val_size=1000)
    study = open_study(
        open_storage(f"sqlite:///{tmp_path}/r.db"),
        "r",
        None,
        protocol,
        pruner="none",
        space="plain",
    )
    assert enqueue_replay(study, [3, 6], seeds=2) == (4, 0)
    assert enqueue_replay(study, [3, 6], seeds=2) == (4, 0)  # queued once, not twice
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 4
    splits = make_splits(mnist, "cpu", val_size=1000, train_subset=300)
    study.optimize(Objective(None, protocol, splits, space="plain"), n_trials=4)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    for t in trials:
        exp = get_experiment(t.user_attrs["experiment"])
        assert t.params == documented_params(exp)
        assert t.user_attrs["spec"] == exp.spec.to_dict()
        assert t.user_attrs["batch_size"] == exp.batch_size
        assert t.user_attrs["protocol"] == PROTOCOL_NAME
        assert t.user_attrs["documented_test_accuracy"] == exp.documented["test_accuracy"]
    assert sorted((t.user_attrs["experiment"], t.user_attrs["seed"]) for t in trials) == [
        (3, 0),
        (3, 1),
        (6, 0),
        (6, 1),
    ]
    # Different seeds give different runs of the same net.
    exp3 = [t for t in trials if t.user_attrs["experiment"] == 3]
    assert exp3[0].intermediate_values != exp3[1].intermediate_values
    assert enqueue_replay(study, [3, 6], seeds=3) == (2, 4)  # only the new seed is queued
    rows = summarize(study, [3, 6])
    assert [r.experiment for r in rows] == [3, 6] and rows[0].seeds == [0, 1]
    assert rows[0].test_accuracy.n == 2


def _row(exp_id, mean):
    empty = {f.name: None for f in fields(ReplayRow)}
    return ReplayRow(**empty | {"experiment": exp_id, "test_accuracy": Stat(mean, 0.1, 3)})


def test_findings_logic():
    rows = [
        _row(1, 97.0),
        _row(2, 98.0),
        _row(3, 93.0),
        _row(4, 94.0),
        _row(5, 96.0),
        _row(6, 97.5),
    ]
    f = {x.id: x for x in findings(rows)}
    assert f["a"].holds is True and "+1.50 points" in f["a"].detail
    assert f["b"].holds is True
    assert f["c"].holds is False  # Exp4 beat Exp3 here: adding the layer did not hurt
    assert f["d"].holds is True and "90%" in f["d"].claim
    low = {x.id: x for x in findings([_row(3, 85.0)])}
    assert low["d"].holds is False
    assert low["a"].holds is None and "needs Exp6 and Exp5" in low["a"].detail


@pytest.mark.slow
def test_replay_json_and_no_retraining(tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    args = [
        "replay",
        "--experiments",
        "3,4",
        "--seeds",
        "1",
        "--json",
        "--data-dir",
        str(data_dir),
        *TINY,
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["protocol"]["name"] == PROTOCOL_NAME and out["protocol"]["momentum"] == 0.9
    assert [e["experiment"] for e in out["experiments"]] == [3, 4]
    e3 = out["experiments"][0]
    assert e3["true_params"] == 4418 and e3["seeds"] == [0]
    assert set(e3["test_accuracy"]) == {"mean", "std", "n"}
    assert e3["efficiency"] == pytest.approx(e3["test_accuracy"]["mean"] / 4.418)
    assert [f["id"] for f in out["findings"]] == ["a", "b", "c", "d"]
    assert out["findings"][2]["holds"] in (True, False) and out["findings"][0]["holds"] is None
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "0 run(s) to train, 2 already done" in again.stderr
    assert json.loads(again.stdout)["experiments"] == out["experiments"]


@pytest.mark.slow
def test_replay_table_shows_the_true_exp1_count(tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(
        app, ["replay", "--experiments", "1", "--seeds", "1", "--data-dir", str(data_dir), *TINY]
    )
    assert r.exit_code == 0, r.output
    assert "~21K (estimated) → 480,176 (!)" in r.stdout
    assert "true total is 480,176" in r.stdout and "(b)" in r.stdout


def test_bad_experiment_list(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["replay", "--experiments", "2,9"])
    assert r.exit_code == 2 and "--experiments '2,9': give ids from 1, 2, 3, 4, 5, 6" in r.stderr
    assert list(tmp_path.iterdir()) == []
