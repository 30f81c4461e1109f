"""How often proposals fit the budget, and what a proposal costs, with no training.

Compares the product's budget-aware space with the same choices under fixed ranges (every width
free up to its maximum) where over-budget proposals are recorded as infeasible and the sampler
must learn to avoid them. Both use Optuna's TPE with the same seeds; the objective rewards bigger
nets (n_params / budget), which pushes proposals against the cap, the hardest case.

    python benchmarks/budget_feasibility.py [--trials 200] [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import optuna

from mnist_search.net.spec import ArchSpec, ConvLayer, SpecError, count_params
from mnist_search.spaces.plain import (
    CHANNELS,
    DROPOUTS,
    HIDDEN,
    KERNELS,
    MAX_CONV,
    MAX_HIDDEN,
    suggest_spec,
    suggest_training,
)

STARTUP = 10  # TPE's default random start-up trials


def fixed_range_spec(trial: optuna.Trial) -> ArchSpec:
    """The same choices with static ranges: the naive space a tool without lookahead would use."""
    n = trial.suggest_int("n_conv", 1, MAX_CONV)
    k = trial.suggest_categorical("kernel", KERNELS)
    pad = k // 2 if trial.suggest_categorical("padding", ("valid", "same")) == "same" else 0
    convs = tuple(
        ConvLayer(
            trial.suggest_int(f"ch{i}", *CHANNELS, log=True),
            k,
            pad,
            trial.suggest_categorical(f"pool{i}", (False, True)),
        )
        for i in range(1, n + 1)
    )
    hidden = tuple(
        trial.suggest_int(f"fc{j}", *HIDDEN, log=True)
        for j in range(1, trial.suggest_int("n_hidden", 0, MAX_HIDDEN) + 1)
    )
    return ArchSpec(
        convs,
        trial.suggest_categorical("batchnorm", (False, True)),
        trial.suggest_categorical("dropout", DROPOUTS),
        trial.suggest_categorical("head", ("flatten", "gap")),
        hidden,
    )


def run(space: str, budget: int, trials: int, seed: int) -> tuple[float, float]:
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    fits: list[bool] = []
    seconds: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        t0 = time.perf_counter()
        try:
            spec = (
                suggest_spec(trial, budget) if space == "budget-aware" else fixed_range_spec(trial)
            )
            n = count_params(spec)
        except SpecError:  # the naive space can also make maps that shrink away
            n = 10 * budget
        suggest_training(trial)
        trial.set_constraint("budget", n - budget)
        seconds.append(time.perf_counter() - t0)
        fits.append(n <= budget)
        if n > budget:
            raise optuna.TrialPruned()
        return n / budget

    study.optimize(objective, n_trials=trials)
    after = fits[STARTUP:]
    return 100.0 * sum(after) / len(after), 1000 * statistics.median(seconds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budgets", default="1000,5000,25000")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    print(
        f"optuna {optuna.__version__}; TPE; {args.trials} trials x {args.seeds} seeds; "
        f"share of proposals within budget after the first {STARTUP} (mean over seeds); "
        "median sampling cost per proposal"
    )
    for budget in map(int, args.budgets.split(",")):
        row = {}
        for space in ("fixed-range", "budget-aware"):
            res = [run(space, budget, args.trials, s) for s in range(args.seeds)]
            row[space] = (statistics.mean(r[0] for r in res), statistics.median(r[1] for r in res))
        fr, ba = row["fixed-range"], row["budget-aware"]
        print(
            f"budget {budget:>6,}: fixed-range {fr[0]:5.1f}% within ({fr[1]:.1f} ms) | "
            f"budget-aware {ba[0]:5.1f}% within ({ba[1]:.1f} ms)"
        )


if __name__ == "__main__":
    main()
