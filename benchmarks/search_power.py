"""What each search finds by itself against wall time, on one machine in one run.

For each budget and seed, every method searches the same space (the modern space, one-epoch
trials on 55,000 training images, judged on the 5,000 held-out validation images) for
``max(--minutes)`` minutes, each run in its own process with the same torch threads:

- ``ours``: ``mnist-search optimize --warm-start none --final-seeds 0`` (the search alone:
  start-up design, rung pruning, dead-trial stop, TPE);
- ``ours-found``: the same, started from the shipped nets (``--warm-start found``);
- ``tpe-median``: what Optuna's PyTorch example does: TPE (Optuna's defaults) and the median
  pruner (Optuna's defaults), each trial validated four times in its epoch;
- ``tpe-hyperband``: TPE and Optuna's Hyperband pruner (min resource 1, max 4 reports,
  reduction factor 3), the same four validations;
- ``random``: random search, no pruning.

Printed: the median (over seeds) best validation accuracy of a finished trial at each of
``--minutes``, and for ours the time it takes to reach each baseline's best at its longest
time (median over seeds of the first time a finished trial reaches it), as a fraction of that
time. Runs are kept in --out (JSON) so that the table can be printed again without rerunning.

    python benchmarks/search_power.py [--budgets 25000,5000] [--seeds 1,2,3]
        [--minutes 1,3,5,10] [--methods ours,tpe-median,tpe-hyperband,random,ours-found]
        [--dataset mnist|fashion-mnist] [--quick]

On a dataset other than MNIST ``ours-found`` is ``ours``: no shipped net is queued there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = ("ours", "tpe-median", "tpe-hyperband", "random", "ours-found")
BASELINES = ("tpe-median", "tpe-hyperband", "random")


def run_one(
    method: str, budget: int, seed: int, seconds: float, subset: int | None, dataset: str
) -> dict:
    """One search in this process; (seconds since start, value) of each finished trial."""
    import optuna
    import torch

    from mnist_search.data.datasets import load_data
    from mnist_search.search.config import FinalSettings, SearchConfig
    from mnist_search.search.engine import run_search
    from mnist_search.spaces import get_space
    from mnist_search.training.loop import TrainConfig, train
    from mnist_search.training.protocol import Protocol
    from mnist_search.training.settings import RunSettings
    from mnist_search.training.steps import TimeUp

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data_dir = os.environ.get("MNIST_SEARCH_DATA") if dataset == "mnist" else None
    protocol = Protocol(train_subset=subset, dataset=dataset)
    tmp = tempfile.mkdtemp()
    if method.startswith("ours"):
        load_data(dataset, data_dir)  # read the files as the baselines do before their clock
        t0 = time.time()
        out = run_search(
            SearchConfig(
                budget=budget,
                seed=seed,
                timeout=seconds,
                protocol=protocol,
                warm_start="found" if method == "ours-found" else "none",
                final=FinalSettings(seeds=0),
                storage=f"sqlite:///{tmp}/s.db",
                artifacts=f"{tmp}/art",
                run=RunSettings(data_dir=data_dir),
            )
        )
        trials = out.study.get_trials(deepcopy=False)
    else:
        splits = protocol.splits(load_data(dataset, data_dir), "cpu")
        space = get_space("modern")
        t0 = time.time()
        deadline = t0 + seconds
        tpe = method.startswith("tpe")
        pruner = {
            "tpe-median": optuna.pruners.MedianPruner(),
            "tpe-hyperband": optuna.pruners.HyperbandPruner(
                min_resource=1, max_resource=4, reduction_factor=3
            ),
        }.get(method, optuna.pruners.NopPruner())
        study = optuna.create_study(
            direction="maximize",
            sampler=(optuna.samplers.TPESampler if tpe else optuna.samplers.RandomSampler)(
                seed=seed
            ),
            pruner=pruner,
        )

        def objective(trial: optuna.Trial) -> float:
            spec = space.suggest_spec(trial, budget)
            cfg = TrainConfig(
                epochs=1,
                reports_per_epoch=4,
                seed=seed + trial.number,
                **space.suggest_training(trial),
            )

            def report(step: int, val: float) -> None:
                trial.report(val, step)
                if trial.should_prune():
                    raise optuna.TrialPruned()

            try:
                r = train(
                    spec, cfg, splits, on_report=report, deadline=deadline, evaluate_test=False
                )
            except TimeUp:
                raise optuna.TrialPruned() from None
            if not r.val_accuracy == r.val_accuracy:  # NaN
                raise optuna.TrialPruned()
            return r.val_accuracy

        study.optimize(objective, timeout=seconds, catch=(RuntimeError,))
        trials = study.get_trials(deepcopy=False)
    done = sorted(
        (t.datetime_complete.timestamp() - t0, t.value)
        for t in trials
        if t.state == optuna.trial.TrialState.COMPLETE and t.datetime_complete and t.value
    )
    return {
        "method": method,
        "dataset": dataset,
        "budget": budget,
        "seed": seed,
        "seconds": seconds,
        "threads": torch.get_num_threads(),
        "trials": len(trials),
        "finished": done,
    }


def best_by(run: dict, t: float) -> float | None:
    vals = [v for s, v in run["finished"] if s <= t]
    return max(vals) if vals else None


def first_reaching(run: dict, target: float) -> float | None:
    best = None
    for s, v in run["finished"]:
        if v >= target:
            return s
        best = v if best is None else max(best, v)
    return None


def median(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def table(runs: list[dict], minutes: list[float]) -> str:
    out = []
    for budget in sorted({r["budget"] for r in runs}, reverse=True):
        mine = [r for r in runs if r["budget"] == budget]
        methods = [m for m in METHODS if any(r["method"] == m for r in mine)]
        head = " | ".join(f"{m:g} min" for m in minutes)
        out.append(
            f"\nbudget {budget:,}: median best validation (%) over seeds "
            f"{sorted({r['seed'] for r in mine})}"
        )
        out.append(f"| method | {head} | trials (median) |")
        out.append("|---|" + "---|" * (len(minutes) + 1))
        for m in methods:
            rs = [r for r in mine if r["method"] == m]
            cells = []
            for t in minutes:
                v = median([best_by(r, 60 * t) for r in rs])
                cells.append("—" if v is None else f"{v:.2f}")
            out.append(
                f"| {m} | " + " | ".join(cells) + f" | {median([r['trials'] for r in rs]):.0f} |"
            )
        ours = [r for r in mine if r["method"] == "ours"]
        horizon = 60 * max(minutes)
        targets = {
            b: median([best_by(r, horizon) for r in mine if r["method"] == b]) for b in BASELINES
        }
        tpes = [targets[b] for b in ("tpe-median", "tpe-hyperband") if targets[b] is not None]
        if tpes:
            targets["the better TPE"] = max(tpes)
        for base, target in targets.items():
            if not ours or target is None:
                continue
            times = [first_reaching(r, target) for r in ours]
            # A seed that never reaches it counts as slower than any that does: the median
            # exists when more than half reach it.
            ranked = sorted(times, key=lambda x: float("inf") if x is None else x)
            t = ranked[len(ranked) // 2] if len(ranked) % 2 else None
            if len(ranked) % 2 == 0 and ranked[len(ranked) // 2] is not None:
                t = (ranked[len(ranked) // 2 - 1] + ranked[len(ranked) // 2]) / 2
            out.append(
                f"ours reaches {base}'s {max(minutes):g}-minute best ({target:.2f}%) in "
                + (
                    f"{t:.0f} s (median): {t / horizon:.2f} of its time"
                    if t is not None
                    else f"fewer than half the seeds within {horizon:.0f} s"
                )
                + f" (per seed: {', '.join('—' if x is None else f'{x:.0f} s' for x in times)})"
            )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budgets", default="25000,5000")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--minutes", default="1,3,5,10")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--out", default="benchmarks/search_power.json")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: check the script runs")
    ap.add_argument("--print-only", action="store_true", help="the table from --out")
    ap.add_argument("--one", nargs=4, metavar=("METHOD", "BUDGET", "SEED", "SECONDS"))
    ap.add_argument("--subset", type=int, default=None)
    ap.add_argument("--dataset", default="mnist", help="mnist or fashion-mnist")
    args = ap.parse_args()
    if args.one:
        m, b, s, sec = args.one
        print(json.dumps(run_one(m, int(b), int(s), float(sec), args.subset, args.dataset)))
        return
    minutes = [float(x) for x in args.minutes.split(",")]
    subset = args.subset
    if args.quick:
        minutes, subset = [0.25, 0.5], 2000
    out = Path(args.out)
    runs: list[dict] = json.loads(out.read_text()) if out.exists() and args.print_only else []
    if not args.print_only:
        for budget in map(int, args.budgets.split(",")):
            for seed in map(int, args.seeds.split(",")):
                for method in args.methods.split(","):
                    cmd = [
                        sys.executable,
                        __file__,
                        "--one",
                        method,
                        str(budget),
                        str(seed),
                        str(60 * max(minutes)),
                    ]
                    if subset:
                        cmd += ["--subset", str(subset)]
                    cmd += ["--dataset", args.dataset]
                    t = time.time()
                    res = subprocess.run(cmd, capture_output=True, text=True)
                    if res.returncode:
                        sys.exit(f"{method} {budget} seed {seed} failed:\n{res.stderr[-3000:]}")
                    run = json.loads(res.stdout.strip().splitlines()[-1])
                    runs.append(run)
                    best = max((v for _, v in run["finished"]), default=None)
                    print(
                        f"{method} budget {budget} seed {seed}: {run['trials']} trials, best "
                        f"{best} ({time.time() - t:.0f} s wall)",
                        flush=True,
                    )
                    if not args.quick:
                        out.write_text(json.dumps(runs, indent=1))
    print(table(runs, minutes))


if __name__ == "__main__":
    main()
