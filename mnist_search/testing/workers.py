"""A study whose first trial trains for a while, and a worker on it that the tests stop: with a
signal, or SIGKILL. Shared by the tests of workers and of stop signals."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from .commands import tool_command
from .processes import hear_stops

# Exp6 on 8,000 images for 2 epochs, judged once an epoch: after its first report the trial has
# an epoch (seconds on 2 cores) left, long enough to be stopped mid-trial.
SLOW = {"budget": 25000, "epochs": 2, "train_subset": 8000, "val_size": 500}


def study_with_a_slow_trial(url: str, name: str) -> optuna.Study:
    """A study of the plain space with the write-up's Exp6 queued as its first trial."""
    from mnist_search.catalog.experiments import get_experiment
    from mnist_search.search.storage import open_storage
    from mnist_search.search.study import open_study
    from mnist_search.search.warmstart import documented_params
    from mnist_search.training.protocol import Protocol

    study = open_study(
        open_storage(url),
        name,
        SLOW["budget"],
        Protocol(
            epochs=SLOW["epochs"], train_subset=SLOW["train_subset"], val_size=SLOW["val_size"]
        ),
        pruner="none",
        space="plain",
    )
    study.enqueue_trial(documented_params(get_experiment(6)))
    return study


def start_worker(
    url: str,
    name: str,
    data_dir: str | Path,
    *extra: str,
    preexec_fn: Callable[[], None] | None = hear_stops,
) -> subprocess.Popen:
    """One `optimize` process for one trial of that study, output and errors on one pipe."""
    cmd = tool_command(
        "optimize",
        *extra,
        **SLOW,
        study_name=name,
        storage=url,
        heartbeat=1,
        n_trials=1,
        device="cpu",
        pruner="none",
        space="plain",
        final_seeds=0,
        data_dir=data_dir,
    )
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=preexec_fn
    )


def wait_for_running(
    url: str, name: str, proc: subprocess.Popen, seconds: float = 120
) -> FrozenTrial:
    """The study's running trial once it has made its first report (so it is mid-trial)."""
    end = time.time() + seconds
    while time.time() < end:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"worker exited early: {out}")
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
