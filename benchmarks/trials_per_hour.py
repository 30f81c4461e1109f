"""Trials per hour of ``mnist-search optimize`` at the one-epoch protocol (full MNIST, pruning on).

Runs the real command for --seconds, then counts finished trials (complete and pruned) between the
first trial's start and the last trial's end. Trials cut by the time limit are not counted.

    python benchmarks/trials_per_hour.py [--device cuda] [--seconds 120] [--parallel 1]
        [--workers 1] [--train-subset N]

The search alone: no warm start, no final stage.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from datetime import date

import optuna
import torch

from mnist_search.testing import tool_command


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--budget", type=int, default=25000)
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--train-subset", type=int, default=None, help="quick runs only")
    ap.add_argument("--data-dir", default=os.environ.get("MNIST_SEARCH_DATA"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/t.db"
        cmd = tool_command(
            "optimize",
            budget=args.budget,
            epochs=1,
            timeout=args.seconds,
            seed=0,
            storage=url,
            study_name="t",
            device=args.device,
            parallel=args.parallel,
            workers=args.workers,
            artifacts=f"{tmp}/a",
            final_seeds=0,
            warm_start="none",
            train_subset=args.train_subset,
            data_dir=args.data_dir,
        )
        subprocess.run(cmd, check=True, capture_output=True)
        trials = [
            t
            for t in optuna.load_study(study_name="t", storage=url).trials
            if t.state.is_finished()
            and t.datetime_complete
            and "time limit" not in str(t.user_attrs.get("pruned_reason", ""))
        ]
        if not trials:
            sys.exit(f"no trial finished within {args.seconds} s; give more --seconds")
        span = (
            max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)
        ).total_seconds()
        done = sum(t.state.name == "COMPLETE" for t in trials)
        rate = len(trials) / span * 3600
        device = (
            torch.cuda.get_device_name()
            if torch.cuda.is_available() and args.device != "cpu"
            else f"CPU ({os.cpu_count()} cores)"
        )
        data = f"{args.train_subset:,} images" if args.train_subset else "full MNIST"
        line = (
            f"{len(trials)} trials ({done} complete) in {span:.0f} s: {rate:,.0f} trials/hour "
            f"(budget {args.budget:,}, one epoch, {data}, parallel {args.parallel}, "
            f"workers {args.workers})"
        )
        print(line)
        print(
            f"\nrecord: | {date.today()} | trials_per_hour.py | {device} | torch "
            f"{torch.__version__} | 1 run of {args.seconds} s | {line} |"
        )


if __name__ == "__main__":
    main()
