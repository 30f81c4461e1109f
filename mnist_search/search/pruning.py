"""Successive halving over report steps, with brackets: most candidates are judged after 1/16
of an epoch, the survivors again at 1/4, and only the best go on to the full length.

Optuna's own pruners do not fit a one-epoch search: the median pruner judges every candidate at
every step but only against finished trials (none at first), its successive halving promotes
only the best one of the first few trials at a rung, and its Hyperband splits the sampler's
history by bracket, so TPE learns from a fraction of the trials.
"""

from __future__ import annotations

import math

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

GROWTH = 4  # each rung judges after this many times the training of the one before
FIRST = 1 / 16  # the first rung, as a fraction of an epoch


class RungPruner(BasePruner):
    """At each rung a trial goes on only while among the best ``keep`` of all trials that
    reached that report step (finished, pruned or still running), once at least ``min_trials``
    others have. Rungs sit at 1/16, 1/4, 1, 4, 16... epochs (as report steps of ``reports`` per
    epoch) before a trial's last report (``steps`` in all: it is finished by then).

    Trial n is in bracket ``n % brackets`` and skips its first ``bracket`` rungs, so a net that
    starts slowly (a low first learning rate, a long warm-up) is judged later on every
    ``brackets``-th trial instead of never surviving the first rung.
    """

    def __init__(
        self,
        reports: int,
        steps: int,
        *,
        keep: float = 1 / 3,
        brackets: int = 2,
        min_trials: int = 3,
    ) -> None:
        if reports < 1 or steps < 1 or not 0 < keep <= 1 or brackets < 1 or min_trials < 1:
            raise ValueError(
                f"reports={reports}, steps={steps}, keep={keep}, brackets={brackets}, "
                f"min_trials={min_trials}"
            )
        self.reports, self.steps, self.keep = reports, steps, keep
        self.brackets, self.min_trials = brackets, min_trials

    def rungs(self) -> list[int]:
        """Report steps (0-based) after which a trial of ``steps`` reports is judged: never its
        last, by when it has finished."""
        steps: list[int] = []
        k = 0
        while True:
            s = math.ceil(self.reports * FIRST * GROWTH**k - 1e-9) - 1
            if s >= self.steps - 1:
                return steps
            if not steps or s > steps[-1]:
                steps.append(s)
            k += 1

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        rungs = self.rungs()[trial.number % self.brackets :]
        if step not in rungs:
            return False
        value = trial.intermediate_values[step]
        if math.isnan(value):
            return True
        others = [
            t.intermediate_values[step]
            for t in study.get_trials(
                deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
            )
            if t.number != trial.number and step in t.intermediate_values
        ]
        others = [v for v in others if not math.isnan(v)]
        if len(others) < self.min_trials:
            return False
        # The rank this trial needs: among the best ceil(keep * n) of the n that reached here.
        ranked = sorted(others + [value], reverse=True)
        cut = ranked[max(1, math.ceil(self.keep * len(ranked))) - 1]
        return value < cut
