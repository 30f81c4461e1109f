"""One study, many processes: each queued trial taken once, stale trials failed and retried, a new
SQLite file made by several at once, someone else's study never adopted."""

import json
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import datetime, timedelta, timezone

import optuna
import pytest
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import TrialState
from typer.testing import CliRunner

from mnist_search.cli.app import app
from mnist_search.search.storage import open_storage
from mnist_search.testing import one_line_error

runner = CliRunner()


TINY = ["--train-subset", "300", "--val-size", "300", "--device", "cpu"]


def test_processes_started_at_once_on_a_new_sqlite_file(spawn, tmp_path, data_dir):
    """Four processes on one new study at the same moment: it is created once, its warm starts
    are queued once (whoever comes first), and no two trials are the same."""
    url = f"sqlite:///{tmp_path}/race.db"
    procs = [
        spawn(
            "optimize",
            "--budget",
            3000,
            "--n-trials",
            1,
            "--study-name",
            "race",
            "--storage",
            url,
            "--final-seeds",
            0,
            "--data-dir",
            data_dir,
            *TINY,
            cwd=tmp_path,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    trials = optuna.load_study(study_name="race", storage=url).trials
    warm = [t.user_attrs["warm_start"] for t in trials if "warm_start" in t.user_attrs]
    # two shipped nets and the 8-point design queued once each; 4 trials taken, the rest waits
    assert len(warm) == 2 and len(set(warm)) == 2, warm
    design = [t.user_attrs["design"] for t in trials if "design" in t.user_attrs]
    assert sorted(design) == list(range(8)), design
    assert len(trials) == 10
    taken = [t for t in trials if t.state != TrialState.WAITING]
    assert len(taken) == 4 and {t.number for t in taken} == {0, 1, 2, 3}
    assert len({json.dumps(t.params, sort_keys=True) for t in taken}) == 4
    assert sum("another process queued the found nets" in o for o in outs) == 3, outs
    assert sum("start-up design: already queued" in o for o in outs) == 3, outs


@pytest.mark.slow
def test_a_study_made_by_another_tool_is_not_adopted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/other.db"
    optuna.create_study(study_name="theirs", storage=url, direction="maximize")
    r = runner.invoke(
        app, ["optimize", "--storage", url, "--study-name", "theirs", "--n-trials", "1"]
    )
    one_line_error(r)
    assert "was not made by mnist-search" in r.stderr
    assert optuna.load_study(study_name="theirs", storage=url).user_attrs == {}


def _name(tmp_path):
    return "st-" + tmp_path.name.replace("_", "-")[-40:]


TAKER = textwrap.dedent("""
    import sys, optuna
    from mnist_search.search.storage import open_storage
    url, name = sys.argv[1], sys.argv[2]
    study = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=60))
    taken = []
    while (tid := study._pop_waiting_trial_id()) is not None:
        taken.append(tid)
    print(" ".join(map(str, taken)))
""")


@pytest.mark.slow
def test_each_queued_trial_is_taken_by_exactly_one_process(storage_url, tmp_path):
    name = _name(tmp_path)
    study = optuna.create_study(study_name=name, storage=open_storage(storage_url))
    for i in range(120):
        study.enqueue_trial({"x": i})
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TAKER, storage_url, name], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4
    taken = Counter(int(t) for out in outs for t in out.split())
    assert sorted(taken) == sorted(t._trial_id for t in study.trials)
    assert [tid for tid, n in taken.items() if n > 1] == []
    # Each taken trial is RUNNING with a heartbeat from the moment it was taken.
    storage = open_storage(storage_url, heartbeat=60)
    assert all(t.state == TrialState.RUNNING for t in study.get_trials())
    with _create_scoped_session(storage.scoped_session) as session:
        beating = {b.trial_id for b in session.query(models.TrialHeartbeatModel).all()}
    assert set(taken) <= beating


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_a_running_trial_that_never_beat_is_failed_and_retried(storage_url, tmp_path):
    """The process was killed between the trial's start and its first heartbeat."""
    name = _name(tmp_path)
    storage = open_storage(storage_url, heartbeat=1)
    study = optuna.create_study(study_name=name, storage=storage)
    silent = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    alive = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    long_ago = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=60)
    with _create_scoped_session(storage.scoped_session) as session:
        session.query(models.TrialHeartbeatModel).filter_by(trial_id=silent._trial_id).delete()
        session.query(models.TrialHeartbeatModel).filter_by(trial_id=alive._trial_id).delete()
        session.query(models.TrialModel).filter_by(trial_id=silent._trial_id).update(
            {"_datetime_start_utc": long_ago}
        )
    # ``alive`` just started and has not beaten yet: it must be left alone.
    optuna.storages.fail_stale_trials(study)
    trials = study.get_trials()
    assert trials[silent.number].state == TrialState.FAIL
    assert trials[alive.number].state == TrialState.RUNNING
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == silent.number]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING
