"""What the storage promises many processes on one study: a queued trial is taken by exactly
one of them, and a trial left RUNNING by a killed process is failed and retried even when the
process died before its first heartbeat. On SQLite and on a real PostgreSQL."""

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

from mnist_search.search.storage import open_storage


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
