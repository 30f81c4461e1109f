"""Peak memory and speed of the default run, search and final stage apart.

Runs ``mnist-search optimize --budget 25000`` as a user would (both stages, the default 900 s,
the default space and warm start, full MNIST; ``--final-seeds 0`` for the search alone) with a
fixed seed on the CPU, and samples the process's peak resident set size (VmHWM, /proc, every
0.1 s). The peak when the final stage starts is the search's; the peak at the end, when higher,
is the final stage's. Images per second: the median over each stage's completed trainings.
--code DIR runs another checkout of the package (a before/after comparison in one session).

    python benchmarks/memory.py [--seconds 900] [--final-seeds 1] [--code DIR] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date

import optuna
import torch

from mnist_search.testing import tool_command


def hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=900)
    ap.add_argument("--final-seeds", type=int, default=1, help="0: the search alone")
    ap.add_argument("--code", help="a checkout whose mnist_search to run instead of this one")
    ap.add_argument("--data-dir", default=os.environ.get("MNIST_SEARCH_DATA"))
    args = ap.parse_args()
    env = dict(os.environ)
    if args.code:
        env["PYTHONPATH"] = args.code
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/m.db"
        cmd = tool_command(
            "optimize",
            budget=25000,
            timeout=args.seconds,
            seed=0,
            device="cpu",
            storage=url,
            study_name="m",
            artifacts=f"{tmp}/a",
            best_spec=f"{tmp}/best.json",
            final_seeds=args.final_seeds,
            data_dir=args.data_dir,
        )
        start = time.time()
        proc = subprocess.Popen(
            cmd, env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        peaks = {"last": 0, "search": None}

        def sample() -> None:
            while proc.poll() is None:
                peaks["last"] = hwm_kb(proc.pid) or peaks["last"]
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("final stage:") and peaks["search"] is None:
                peaks["search"] = hwm_kb(proc.pid) or peaks["last"]
        proc.wait()
        sampler.join()
        wall = time.time() - start
        if proc.returncode:
            sys.exit("".join(lines[-20:]))
        stages = {"search": "m"}
        finals = [s.study_name for s in optuna.get_all_study_summaries(url) if s.study_name != "m"]
        if finals:
            stages["final"] = finals[0]
        speed = {}
        for stage, name in stages.items():
            done = optuna.load_study(study_name=name, storage=url).get_trials(
                states=(optuna.trial.TrialState.COMPLETE,)
            )
            ips = [t.user_attrs["images_per_second"] for t in done]
            speed[stage] = (len(done), statistics.median(ips) if ips else float("nan"))
    search_gib = (peaks["search"] or peaks["last"]) / 2**20
    total_gib = peaks["last"] / 2**20
    chosen = [ln.strip() for ln in lines if ln.startswith("chosen:")]
    print(
        f"{date.today()} torch {torch.__version__}, {os.cpu_count()} cores, code "
        f"{args.code or 'this checkout'}: default run, {args.seconds} s limit, {wall:.0f} s wall"
    )
    print(
        f"  search: peak RSS {search_gib:.2f} GiB, {speed['search'][0]} complete trials, "
        f"median {speed['search'][1]:,.0f} images/s"
    )
    if "final" in speed:
        print(
            f"  final:  peak RSS {max(total_gib, search_gib):.2f} GiB (whole run), "
            f"{speed['final'][0]} retrainings, median {speed['final'][1]:,.0f} images/s"
        )
    print("  " + (chosen[0] if chosen else "no net chosen"))


if __name__ == "__main__":
    main()
