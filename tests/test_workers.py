"""Many workers on one study, on SQLite and on a real PostgreSQL; crashes lose only their trial."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from foreground import hear_stops
from optuna.trial import TrialState
from typer.testing import CliRunner

from mnist_search.cli.app import app
from mnist_search.replay.experiments import get_experiment
from mnist_search.replay.run import documented_params
from mnist_search.search.storage import open_storage
from mnist_search.search.study import open_study
from mnist_search.training.protocol import Protocol

runner = CliRunner()
TINY = ["--train-subset", "200", "--val-size", "500", "--device", "cpu"]


def _name(tmp_path):
    return "s-" + tmp_path.name.replace("_", "-")[-40:]


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


def _wait_for_running(url, name, proc, seconds=120):
    for _ in range(seconds * 4):
        if proc.poll() is not None:
            raise AssertionError(f"worker exited early: {proc.stdout.read()}")
        try:
            running = optuna.load_study(study_name=name, storage=url).get_trials(
                states=(TrialState.RUNNING,)
            )
        except KeyError:
            running = []
        if running and running[0].intermediate_values:
            return running[0]
        time.sleep(0.25)
    raise AssertionError("no trial started running")


def _as_a_background_job():
    """What `mnist-search optimize ... &` in a script gets: SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker(url, name, data_dir, *extra, preexec_fn=hear_stops):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mnist_search",
            "optimize",
            "--budget",
            "25000",
            "--study-name",
            name,
            "--storage",
            url,
            "--heartbeat",
            "1",
            "--n-trials",
            "1",
            "--epochs",
            "4",
            "--train-subset",
            "8000",
            "--val-size",
            "500",
            "--device",
            "cpu",
            "--pruner",
            "none",
            "--space",
            "plain",
            "--final-seeds",
            "0",
            "--data-dir",
            str(data_dir),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=preexec_fn,
    )


def _study_with_a_slow_trial(url, name):
    study = open_study(
        open_storage(url),
        name,
        25000,
        Protocol(epochs=4, train_subset=8000, val_size=500),
        pruner="none",
        space="plain",
    )
    study.enqueue_trial(documented_params(get_experiment(6)))  # a net that trains for a while
    return study


def test_killed_worker_trial_is_retried(storage_url, tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    name = _name(tmp_path)
    _study_with_a_slow_trial(storage_url, name)
    a = _worker(storage_url, name, data_dir)
    victim = _wait_for_running(storage_url, name, a)
    os.kill(a.pid, signal.SIGKILL)
    a.wait()
    time.sleep(4)  # past the grace period of 3 heartbeats
    b = _worker(storage_url, name, data_dir)
    out, _ = b.communicate(timeout=300)
    assert b.returncode == 0, out
    trials = optuna.load_study(study_name=name, storage=storage_url).get_trials()
    failed, retry = trials[victim.number], trials[-1]
    assert failed.state == TrialState.FAIL
    assert retry.state == TrialState.COMPLETE
    assert retry.system_attrs["failed_trial"] == victim.number
    assert retry.params == failed.params
    assert retry.user_attrs["seed"] == failed.user_attrs["seed"]  # the same run, again


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_stop_signal_marks_the_trial_prints_the_summary_and_resumes(tmp_path, data_dir, sig):
    """Ctrl-C, and what a scheduler (SIGTERM) or a closed terminal (SIGHUP) sends, stop alike."""
    url = f"sqlite:///{tmp_path}/c.db"
    name = "c"
    _study_with_a_slow_trial(url, name)
    a = _worker(url, name, data_dir, "--artifacts", str(tmp_path / "a"))
    running = _wait_for_running(url, name, a)
    assert a.poll() is None, "the trial finished before it could be interrupted"
    sent = time.time()
    a.send_signal(getattr(signal, sig))
    out, _ = a.communicate(timeout=60)
    assert time.time() - sent < 20, "it should stop at the trial's next batch"
    assert a.returncode == 0 and "Traceback" not in out, out
    assert "interrupted: the running trial is marked failed" in out, out
    assert f"study {name}:" in out and "1 failed" in out
    assert (
        optuna.load_study(study_name=name, storage=url).trials[running.number].state
        == TrialState.FAIL
    )
    b = _worker(url, name, data_dir, "--artifacts", str(tmp_path / "a"))
    out, _ = b.communicate(timeout=300)
    assert b.returncode == 0, out
    assert f"resuming study {name!r}" in out, out
    # The same command resumed the study and trained its next trial to an end (a net the
    # sampler drew; it may be pruned, e.g. as dead, which is an end too).
    states = [t.state for t in optuna.load_study(study_name=name, storage=url).trials]
    assert states[0] == TrialState.FAIL and len(states) == 2, states
    assert states[1] in (TrialState.COMPLETE, TrialState.PRUNED), states


def test_sigterm_stops_workers_of_a_background_job(tmp_path, data_dir):
    """Started with SIGINT ignored (a job run with `&`), `--workers 2` still stops on SIGTERM: the
    parent passes it on as SIGINT, which the workers hear; they mark their trials and end."""
    url = f"sqlite:///{tmp_path}/w.db"
    name = "w"
    _study_with_a_slow_trial(url, name)
    a = _worker(
        url, name, data_dir, "--workers", "2", "--artifacts", str(tmp_path / "a"),
        preexec_fn=_as_a_background_job,
    )  # fmt: skip
    try:
        running = _wait_for_running(url, name, a)
        sent = time.time()
        a.send_signal(signal.SIGTERM)
        out, _ = a.communicate(timeout=60)
    finally:
        a.kill()
    assert time.time() - sent < 20, out
    assert a.returncode == 0 and "Traceback" not in out, (a.returncode, out)
    assert (
        optuna.load_study(study_name=name, storage=url).trials[running.number].state
        == TrialState.FAIL
    )


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
