"""Many workers on one study, on SQLite and on a real PostgreSQL; crashes lose only their trial."""

import os
import signal
import time

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from mnist_search.cli.app import app
from mnist_search.testing import start_worker, study_with_a_slow_trial, wait_for_running

runner = CliRunner()

TINY = ["--train-subset", "200", "--val-size", "500", "--device", "cpu"]


def _name(tmp_path):
    return "s-" + tmp_path.name.replace("_", "-")[-40:]


@pytest.mark.slow
def test_four_workers_five_trials_each(storage_url, tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    name = _name(tmp_path)
    r = runner.invoke(
        app,
        [
            "optimize",
            "--budget",
            "3000",
            "--workers",
            "4",
            "--n-trials",
            "5",
            "--seed",
            "0",
            "--study-name",
            name,
            "--storage",
            storage_url,
            "--data-dir",
            str(data_dir),
            "--artifacts",
            str(tmp_path / "a"),
            *TINY,
        ],
    )
    assert r.exit_code == 0, r.output
    trials = optuna.load_study(study_name=name, storage=storage_url).get_trials()
    assert sorted(t.number for t in trials) == list(range(20))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert all(t.user_attrs["n_params"] <= 3000 for t in trials)
    # Each worker has its own sampler seed, so they do not all propose the same nets.
    assert len({tuple(sorted(t.params.items())) for t in trials}) > 10


@pytest.mark.slow
def test_killed_worker_trial_is_retried(storage_url, tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    name = _name(tmp_path)
    study_with_a_slow_trial(storage_url, name)
    a = start_worker(storage_url, name, data_dir)
    victim = wait_for_running(storage_url, name, a)
    os.kill(a.pid, signal.SIGKILL)
    a.wait()
    time.sleep(4)  # past the grace period of 3 heartbeats
    b = start_worker(storage_url, name, data_dir)
    out, _ = b.communicate(timeout=300)
    assert b.returncode == 0, out
    trials = optuna.load_study(study_name=name, storage=storage_url).get_trials()
    failed, retry = trials[victim.number], trials[-1]
    assert failed.state == TrialState.FAIL
    assert retry.state == TrialState.COMPLETE
    assert retry.system_attrs["failed_trial"] == victim.number
    assert retry.params == failed.params
    assert retry.user_attrs["seed"] == failed.user_attrs["seed"]  # the same run, again


def test_unreachable_database_is_one_line_exit_2(tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(
        app,
        [
            "optimize",
            "--storage",
            "postgresql://nobody@127.0.0.1:1/none",
            "--n-trials",
            "1",
            "--data-dir",
            str(data_dir),
            *TINY,
        ],
    )
    assert r.exit_code == 2
    assert r.stderr.startswith("error: storage 'postgresql://nobody@127.0.0.1:1/none' is unusable")
    assert len(r.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_existing_study_with_other_direction_is_refused(tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/d.db"
    optuna.create_study(study_name="d", storage=url, direction="minimize")
    r = runner.invoke(
        app,
        [
            "optimize",
            "--storage",
            url,
            "--study-name",
            "d",
            "--n-trials",
            "1",
            "--data-dir",
            str(data_dir),
            *TINY,
        ],
    )
    assert r.exit_code == 2 and "exists with direction MINIMIZE" in r.stderr
    assert optuna.load_study(study_name="d", storage=url).trials == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--workers", "0"], "--workers 0: must be at least 1"),
        (["--heartbeat", "0"], "--heartbeat 0: must be at least 1 second"),
    ],
)
def test_bad_worker_options(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["optimize", *args])
    assert r.exit_code == 2 and message in r.stderr and list(tmp_path.iterdir()) == []
