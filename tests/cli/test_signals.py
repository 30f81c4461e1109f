"""Ctrl-C, SIGTERM and SIGHUP: the running trial is marked, the summary printed, the study resumes;
workers and background jobs hear them too."""

import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from mnist_search.testing import start_worker, study_with_a_slow_trial, wait_for_running


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_train_stops_on_a_stop_signal_as_on_ctrl_c(spawn, sig, tmp_path, data_dir):
    """A scheduler's SIGTERM or a closed terminal's SIGHUP ends `train` as Ctrl-C does: at once,
    one line, no traceback, the same exit status (not a kill by the signal)."""
    proc = spawn(
        "train",
        "--experiment",
        "6",
        "--epochs",
        "20",
        "--device",
        "cpu",
        "--data-dir",
        data_dir,
        cwd=tmp_path,
    )
    try:
        seen = ""
        while "MNIST from" not in seen:  # the data is loaded: training starts now
            line = proc.stdout.readline()
            assert line, seen
            seen += line
        time.sleep(2)
        sent = time.time()
        proc.send_signal(getattr(signal, sig))
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()  # a failed check must not leave 20 epochs training beside the other tests
    assert time.time() - sent < 20
    # 130, as for Ctrl-C (not -15 or -1: killed by the signal, nothing cleaned up).
    assert proc.returncode == 130 and "Traceback" not in out, (proc.returncode, out)


def test_a_signal_started_ignored_stays_ignored_except_sigint_in_a_worker():
    """nohup's SIGHUP and a background job's SIGINT stay ignored (a search run with nohup outlives
    its terminal); SIGTERM still stops it; a worker hears SIGINT, which its parent forwards."""
    code = (
        "import signal\n"
        "from mnist_search.stopping import StopToken, obey_the_parent, stop_on_signals, "
        "terminate_like_ctrl_c\n"
        "ign = lambda s: signal.getsignal(s) is signal.SIG_IGN\n"
        "terminate_like_ctrl_c()\n"
        "print(ign(signal.SIGHUP), ign(signal.SIGINT), ign(signal.SIGTERM))\n"
        "with stop_on_signals(StopToken()):\n"
        "    print(ign(signal.SIGHUP), ign(signal.SIGINT), ign(signal.SIGTERM))\n"
        "obey_the_parent()\n"
        "print(ign(signal.SIGHUP), ign(signal.SIGINT), ign(signal.SIGTERM))\n"
    )

    def ignore_hup_and_int():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=ignore_hup_and_int,
    )
    assert out.stdout.split("\n")[:3] == ["True True False"] * 2 + ["True False False"], out


def test_optuna_says_nothing_of_a_stopped_trial_and_all_of_a_failed_one():
    """A trial stopped by a signal: the command's one line, not Optuna's traceback. A trial that
    failed by an error keeps Optuna's lines, traceback included."""
    import logging

    from mnist_search.search.progress import setup_logging

    setup_logging()
    records: list[logging.LogRecord] = []
    catcher = logging.Handler()
    catcher.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("optuna").addHandler(catcher)
    try:
        study = optuna.create_study()

        def stopped(trial):
            raise KeyboardInterrupt("SIGTERM")

        def broken(trial):
            raise ValueError("a bug")

        with pytest.raises(KeyboardInterrupt):
            study.optimize(stopped, n_trials=1)
        study.optimize(broken, n_trials=1, catch=(ValueError,))
    finally:
        logging.getLogger("optuna").removeHandler(catcher)
    said = [(r.getMessage(), r.exc_info is not None) for r in records]
    assert not [m for m, _ in said if m.startswith("Trial 0 ")], said
    assert [m for m, tb in said if m.startswith("Trial 1 failed with parameters") and tb], said
    assert ("Trial 1 failed with value None.", False) in said


def _as_a_background_job():
    """What `mnist-search optimize ... &` in a script gets: SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_stop_signal_marks_the_trial_prints_the_summary_and_resumes(tmp_path, data_dir, sig):
    """Ctrl-C, and what a scheduler (SIGTERM) or a closed terminal (SIGHUP) sends, stop alike."""
    url = f"sqlite:///{tmp_path}/c.db"
    name = "c"
    study_with_a_slow_trial(url, name)
    a = start_worker(url, name, data_dir, "--artifacts", str(tmp_path / "a"))
    running = wait_for_running(url, name, a)
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
    b = start_worker(url, name, data_dir, "--artifacts", str(tmp_path / "a"))
    out, _ = b.communicate(timeout=300)
    assert b.returncode == 0, out
    assert f"resuming study {name!r}" in out, out
    # The same command resumed the study and trained its next trial to an end (a net the
    # sampler drew; it may be pruned, e.g. as dead, which is an end too).
    states = [t.state for t in optuna.load_study(study_name=name, storage=url).trials]
    assert states[0] == TrialState.FAIL and len(states) == 2, states
    assert states[1] in (TrialState.COMPLETE, TrialState.PRUNED), states


@pytest.mark.slow
def test_sigterm_stops_workers_of_a_background_job(tmp_path, data_dir):
    """Started with SIGINT ignored (a job run with `&`), `--workers 2` still stops on SIGTERM: the
    parent passes it on as SIGINT, which the workers hear; they mark their trials and end."""
    url = f"sqlite:///{tmp_path}/w.db"
    name = "w"
    study_with_a_slow_trial(url, name)
    a = start_worker(
        url, name, data_dir, "--workers", "2", "--artifacts", str(tmp_path / "a"),
        preexec_fn=_as_a_background_job,
    )  # fmt: skip
    try:
        running = wait_for_running(url, name, a)
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
