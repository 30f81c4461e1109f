"""Trials per hour with 1, 2 and 4 local workers on SQLite and on PostgreSQL.

A storage-overhead figure, not a training figure: the protocol is tiny (100 training images,
200 validation images, one epoch, nets under 2,000 parameters), so most of a trial's time is the
sampler and the storage. Throughput is counted from the first trial's start to the last trial's
end (process start-up and data loading excluded). PostgreSQL is a throwaway server on 127.0.0.1
(mnist_search/testing/postgres.py).

The same total number of trials for every worker count (the sampler's cost per trial grows with
the trials already in the study). On a CPU each of N workers gets cores/N threads.

    python benchmarks/workers.py [--trials 40] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
from datetime import date

import optuna
import torch

from mnist_search.testing import throwaway_postgres, tool_command


def run(url: str, name: str, workers: int, trials: int, data_dir: str | None, cwd: str) -> float:
    cmd = tool_command(
        "optimize",
        budget=2000,
        study_name=name,
        storage=url,
        workers=workers,
        n_trials=trials,
        train_subset=100,
        val_size=200,
        device="cpu",
        seed=0,
        artifacts=os.path.join(cwd, "artifacts"),
        data_dir=data_dir,
    )
    subprocess.run(cmd, check=True, cwd=cwd, capture_output=True)
    trials_done = optuna.load_study(study_name=name, storage=url).get_trials()
    start = min(t.datetime_start for t in trials_done)
    end = max(t.datetime_complete for t in trials_done)
    assert len(trials_done) == workers * trials
    return len(trials_done) / (end - start).total_seconds() * 3600


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=40, help="total, split over the workers")
    ap.add_argument("--data-dir", default=os.environ.get("MNIST_SEARCH_DATA"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, throwaway_postgres() as pg_url:
        for backend, url in (("sqlite", f"sqlite:///{tmp}/bench.db"), ("postgresql", pg_url)):
            for n in (1, 2, 4):
                rate = run(url, f"{backend}-{n}", n, args.trials // n, args.data_dir, tmp)
                rows.append((backend, n, rate))
                print(f"{backend:>10}, {n} worker(s): {rate:7.0f} trials/hour", flush=True)
    base = {b: r for b, n, r in rows if n == 1}
    line = "; ".join(f"{b} {n}w {r:.0f}/h ({r / base[b]:.2f}x)" for b, n, r in rows)
    print(
        f"\n{platform.node()} CPU ({os.cpu_count()} cores), torch {torch.__version__}, optuna "
        f"{optuna.__version__}: {line}"
    )
    print(
        f"record: | {date.today()} | workers.py | CPU {os.cpu_count()} cores | "
        f"{args.trials} trials per run | {line} |"
    )


if __name__ == "__main__":
    main()
