"""Does a short training rank tiny nets as a long one does? The question behind judging small
budgets at the length they will train (their finalists train 20-100 epochs; the search ranks
them on one).

For each budget and space, ``--nets`` nets are drawn at random from the space (widths fitted by
the space to the budget, seeds fixed), each trained with one recipe (AdamW, lr 0.01, weight decay
1e-4, one-cycle, batch 128; a net's rank should not depend on a recipe drawn for it) three ways:
for 1 epoch (what the search's trial does), for 4 epochs, and for ``--long`` epochs, validated
after every epoch. Printed per budget and space: the Spearman rank correlation with the long
training's final validation of (a) the 1-epoch training, (b) the 4-epoch training and (c) the
long training's own validation after 1, 2, 4 and 8 epochs (a prefix judge: its schedule is the
long one's, so it is what a successive-halving rung of a long training would see). Judged on the
5,000 held-out validation images only; test is never evaluated.

    python benchmarks/rank_correlation.py [--budgets 1000,2000] [--spaces modern,tiny]
        [--nets 20] [--long 30] [--no-four] [--out rank_correlation.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

RECIPE = {
    "batch_size": 128,
    "optimizer": "adamw",
    "lr": 0.01,
    "weight_decay": 1e-4,
    "schedule": "onecycle",
}
PREFIX = (1, 2, 4, 8)


def ranks(xs: list[float]) -> list[float]:
    """Ranks from 1, ties given their average rank."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    out = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(a: list[float], b: list[float]) -> float | None:
    if len(a) < 3:
        return None
    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    var = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return cov / var if var else None


def draw(space_name: str, budget: int, n: int, seed: int) -> list:
    """``n`` distinct nets of the space under ``budget``, drawn at random."""
    import optuna

    from mnist_search.spaces import get_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = get_space(space_name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    nets, seen = [], set()
    while len(nets) < n and len(study.trials) < 50 * n:
        trial = study.ask()
        spec = space.suggest_spec(trial, budget)
        study.tell(trial, 0.0)
        if spec.to_json() not in seen:
            seen.add(spec.to_json())
            nets.append(spec)
    return nets


def measure(spec, splits, long: int, seed: int, four: bool = True) -> dict:
    from mnist_search.net.spec import count_params, describe
    from mnist_search.training.loop import TrainConfig, train

    def run(epochs: int) -> list[float]:
        cfg = TrainConfig(epochs=epochs, seed=seed, reports_per_epoch=1, **RECIPE)
        r = train(spec, cfg, splits, evaluate_test=False)
        return [v for _, v in r.history]

    t = time.time()
    one, curve = run(1)[-1], run(long)
    four_run = run(4)[-1] if four else None
    return {
        "n_params": count_params(spec),
        "architecture": describe(spec),
        "one_epoch": one,
        "four_epochs": four_run,
        "curve": curve,
        "seconds": round(time.time() - t, 1),
    }


def table(results: list[dict], long: int) -> str:
    out = [
        "| budget | space | nets | 1-epoch run | 4-epoch run | "
        + " | ".join(f"long run at {e}" for e in PREFIX if e < long)
        + f" | long run's {long}-epoch val (median, range) |",
        "|---|---|---|---|---|" + "---|" * len([e for e in PREFIX if e < long]) + "---|",
    ]
    for key in sorted({(r["budget"], r["space"]) for r in results}):
        rs = [r for r in results if (r["budget"], r["space"]) == key]
        final = [r["curve"][-1] for r in rs]

        def rho(xs: list[float | None]) -> str:
            v = None if None in xs else spearman(xs, final)  # type: ignore[arg-type]
            return "—" if v is None else f"{v:.2f}"

        def pick(xs: list[float | None]) -> str:
            """The long validation of the net this judge ranks first."""
            if None in xs:
                return ""
            best = max(range(len(rs)), key=lambda i: xs[i])  # type: ignore[arg-type,return-value]
            return f" ({final[best]:.2f})"

        judges = [[r["one_epoch"] for r in rs], [r["four_epochs"] for r in rs]]
        judges += [[r["curve"][e - 1] for r in rs] for e in PREFIX if e < long]
        cells = [rho(xs) + pick(xs) for xs in judges]
        spread = f"{statistics.median(final):.2f} ({min(final):.2f}–{max(final):.2f})"
        out.append(f"| {key[0]:,} | {key[1]} | {len(rs)} | " + " | ".join(cells) + f" | {spread} |")
    out.append(
        "\nEach cell: Spearman's rho with the long run's final validation, and in brackets the "
        "final validation of the net that judge ranks first."
    )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budgets", default="1000,2000")
    ap.add_argument("--spaces", default="modern,tiny")
    ap.add_argument("--nets", type=int, default=20)
    ap.add_argument("--long", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--no-four",
        action="store_true",
        help="skip the separate 4-epoch run (the long run's own epoch 4 is still judged)",
    )
    ap.add_argument("--out", default="rank_correlation.json")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: check the script runs")
    ap.add_argument("--print-only", action="store_true", help="the table from --out")
    args = ap.parse_args()
    out = Path(args.out)
    results: list[dict] = json.loads(out.read_text()) if out.exists() else []
    if not args.print_only:
        from mnist_search.data.datasets import load_data
        from mnist_search.net.spec import describe
        from mnist_search.training.protocol import Protocol

        subset, nets, long = (2000, 3, 5) if args.quick else (None, args.nets, args.long)
        splits = Protocol(train_subset=subset).splits(
            load_data("mnist", os.environ.get("MNIST_SEARCH_DATA")), "cpu"
        )
        done = {(r["budget"], r["space"], r["architecture"]) for r in results}
        for budget in map(int, args.budgets.split(",")):
            for space in args.spaces.split(","):
                for k, spec in enumerate(draw(space, budget, nets, args.seed + budget)):
                    if (budget, space, describe(spec)) in done:
                        continue  # measured by an earlier run of this command: resumed
                    r = measure(spec, splits, long, args.seed + k, four=not args.no_four)
                    results.append({"budget": budget, "space": space, **r})
                    print(
                        f"{budget} {space} net {k}: {r['n_params']} p., 1 ep {r['one_epoch']:.2f}, "
                        f"4 ep {r['four_epochs'] or float('nan'):.2f}, {long} ep {r['curve'][-1]:.2f} "
                        f"({r['seconds']:.0f} s)",
                        flush=True,
                    )
                    if not args.quick:
                        out.write_text(json.dumps(results, indent=1))
    print(table(results, args.long if not args.quick else 5))


if __name__ == "__main__":
    main()
