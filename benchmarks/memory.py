"""Peak resident memory and training speed of the default CPU search.

Runs ``mnist-search optimize --budget 25000`` (the default space and protocol, full MNIST) for
--seconds with a fixed seed, then prints the process's peak resident set size (the kernel's
maximum RSS of the finished child) and images per second (median over its complete trials, and
all training images over all training seconds; the searches' nets differ between code versions,
so speed is also measured on one fixed net: the shipped 25,000 spec, trained one epoch alone).
--code DIR runs another checkout of the package (for a before/after comparison in one session).

    python benchmarks/memory.py [--seconds 300] [--code DIR] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from datetime import date

import optuna
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--code", help="a checkout whose mnist_search to run instead of this one")
    ap.add_argument("--data-dir", default=os.environ.get("MNIST_SEARCH_DATA"))
    args = ap.parse_args()
    env = dict(os.environ)
    if args.code:
        env["PYTHONPATH"] = args.code
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/m.db"
        cmd = [
            sys.executable,
            "-m",
            "mnist_search",
            "optimize",
            "--budget",
            "25000",
            "--timeout",
            str(args.seconds),
            "--seed",
            "0",
            "--device",
            "cpu",
            "--storage",
            url,
            "--study-name",
            "m",
            "--artifacts",
            f"{tmp}/a",
        ]
        if args.data_dir:
            cmd += ["--data-dir", args.data_dir]
        subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=tmp)
        peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        done = optuna.load_study(study_name="m", storage=url).get_trials(
            states=(optuna.trial.TrialState.COMPLETE,)
        )
        spec = os.path.join(
            args.code or os.path.dirname(os.path.dirname(__file__)) or ".",
            "mnist_search",
            "found",
            "budget-25000.json",
        )
        train = [
            sys.executable,
            "-m",
            "mnist_search",
            "train",
            "--spec",
            os.path.abspath(spec),
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--json",
        ] + (["--data-dir", args.data_dir] if args.data_dir else [])
        out = subprocess.run(
            train, check=True, capture_output=True, env=env, cwd=tmp, text=True
        ).stdout
        fixed = json.loads(out)["images_per_second"]
    ips = [t.user_attrs["images_per_second"] for t in done]
    images = sum(t.user_attrs["epochs"] * 55000 for t in done)
    seconds = sum(t.user_attrs["train_seconds"] for t in done)
    print(
        f"{date.today()} torch {torch.__version__}, {os.cpu_count()} cores, "
        f"code {args.code or 'this checkout'}: {args.seconds} s search, {len(done)} complete "
        f"trials; peak RSS {peak_gib:.2f} GiB; images/s median {statistics.median(ips):,.0f}, "
        f"overall {images / seconds:,.0f}; fixed 21.8K net alone {fixed:,.0f} images/s"
    )


if __name__ == "__main__":
    main()
