"""A load test of one study: many worker processes at once on one storage, some killed with
SIGKILL mid-trial, then a last worker that sweeps up. Shared by tests/search/test_load.py (small)
and benchmarks/load.py (16 workers or more)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter

import optuna
from optuna.trial import TrialState

from .commands import tool_command


def _worker(url: str, name: str, trials: int, data_dir: str, cwd: str) -> subprocess.Popen:
    return subprocess.Popen(
        tool_command(
            "optimize",
            budget=2000,
            study_name=name,
            storage=url,
            n_trials=trials,
            heartbeat=1,
            seed=0,
            train_subset=100,
            val_size=200,
            device="cpu",
            data_dir=data_dir,
            artifacts=os.path.join(cwd, "artifacts"),
        ),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _err(proc: subprocess.Popen) -> str:
    return proc.stderr.read() if proc.stderr else ""


def _running(url: str, name: str) -> int:
    try:
        return len(
            optuna.load_study(study_name=name, storage=url).get_trials(
                deepcopy=False, states=(TrialState.RUNNING,)
            )
        )
    except KeyError:
        return 0


def run_load(
    url: str,
    data_dir: str,
    cwd: str,
    *,
    workers: int,
    trials: int,
    kills: int,
    name: str = "load",
    seed: int = 0,
) -> dict:
    """Start ``workers`` processes at once (``trials`` tiny trials each), SIGKILL ``kills`` of
    them at random moments while trials run, let the rest finish, then sweep: one more worker
    fails the trials left RUNNING by the killed ones and runs their retries."""
    rng = random.Random(seed)
    start = time.time()
    procs = [_worker(url, name, trials, data_dir, cwd) for _ in range(workers)]
    victims = rng.sample(range(workers), kills)
    killed: list[int] = []
    for v in victims:
        # Wait until most workers are inside a trial (not still starting up), so that a kill
        # lands mid-trial more often than between trials.
        deadline = time.time() + 300
        while _running(url, name) < max(1, (workers - len(killed)) // 2) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.3))
        if procs[v].poll() is None:
            procs[v].send_signal(signal.SIGKILL)
            killed.append(v)
    codes = [p.wait(timeout=900) for p in procs]
    errors = [_err(p) for i, p in enumerate(procs) if codes[i] != 0 and i not in killed]
    time.sleep(3.5)  # past the grace period of 3 heartbeats
    study = optuna.load_study(study_name=name, storage=url)
    stale = len(study.get_trials(states=(TrialState.RUNNING,)))
    waiting = len(study.get_trials(states=(TrialState.WAITING,)))
    if stale or waiting:
        sweep = _worker(url, name, stale + waiting, data_dir, cwd)
        sweep.wait(timeout=900)
        if sweep.returncode:
            errors.append(_err(sweep))
    trials_ = optuna.load_study(study_name=name, storage=url).trials
    states = Counter(t.state.name for t in trials_)
    retries = Counter(
        t.system_attrs.get("failed_trial") for t in trials_ if "failed_trial" in t.system_attrs
    )
    failed = [t.number for t in trials_ if t.state == TrialState.FAIL]
    return {
        "workers": workers,
        "trials": len(trials_),
        "kills": len(killed),
        "states": dict(states),
        "failed": failed,
        "retries": dict(retries),
        "lost": len(trials_) - states["COMPLETE"] - states["PRUNED"] - states["FAIL"],
        "unretried": [n for n in failed if retries.get(n) != 1],
        "worker_errors": errors,
        "seconds": round(time.time() - start, 1),
    }


def check(result: dict) -> None:
    """Every trial ended COMPLETE, PRUNED or FAIL; each FAIL was retried exactly once; none is
    left RUNNING or WAITING; the workers that were not killed exited cleanly."""
    assert result["worker_errors"] == [], result["worker_errors"]
    assert result["lost"] == 0, result
    assert set(result["states"]) <= {"COMPLETE", "PRUNED", "FAIL"}, result
    assert result["unretried"] == [], result
    assert all(v == 1 for v in result["retries"].values()), result
