"""The final stage's time policy: which finalists, how many epochs each, and how much of the
search's time to leave for it. Every margin is in ``Margins``; every length policy is a ``Plan``
the final stage's one loop asks as each finalist starts (``FixedLength``, ``TimeLeft``)."""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass
from typing import Protocol

import optuna
from optuna.trial import FrozenTrial

from mnist_search.search import records
from mnist_search.search.records import TrialRecord, rank_key
from mnist_search.stopping import Deadline, StopToken

log = logging.getLogger("mnist_search")


@dataclass(frozen=True)
class Margins:
    """What each estimate of the final stage's time keeps in reserve."""

    lengths: float = 1.2  # finalists' lengths planned from their search trials' speed
    first_run: float = 1.2  # a length set as the stage's first run starts, before any is timed
    reserve: float = 1.25  # the time a search leaves for a final stage of fixed length


MARGINS = Margins()


def finalists(study: optuna.Study, top: int, incumbent: bool = False) -> list[TrialRecord]:
    """The search's ``top`` best searched candidates (queued fixed nets are not candidates);
    with ``incumbent``, then its best warm start when it is not among them already."""
    chosen = [r for r in records.top_trials(study, top) if not r.is_fixed]
    return _and_incumbent(study, chosen) if incumbent else chosen


def incumbent(study: optuna.Study) -> TrialRecord | None:
    """The search's best complete warm-start trial: the net it started from (a shipped net, or
    the one chosen at a smaller budget, fitted to this one), by its search validation."""
    starts = [r for r in records.complete(study) if r.origin is records.Origin.WARM_START]
    return min(starts, key=rank_key, default=None)


_incumbent = incumbent  # for the functions whose flag of that name shadows it


def _and_incumbent(study: optuna.Study, chosen: list[TrialRecord]) -> list[TrialRecord]:
    inc = _incumbent(study)
    if inc is None or any(r.number == inc.number for r in chosen):
        return chosen
    return [*chosen, inc]


def epoch_seconds(r: TrialRecord, epochs: int) -> float:
    """Seconds an epoch of ``r``'s net takes in a final run, from ``r`` (a search trial, or a
    final run, of ``epochs`` epochs): its optimisation time per epoch and one validation (a final
    run validates once an epoch, a search trial ``reports_per_epoch`` times). The trial's wall
    time per epoch where its training time was not recorded.

    Wall time alone overstates it: a 24,452-parameter net's one-epoch trial on the CPU took
    36.4 s (31.3 s of it training, the rest sixteen validations and start-up), and its final
    runs 31.3 s an epoch; this gives 31.6 s."""
    wall = r.seconds or 0.0
    if r.train_seconds is None or wall <= 0:
        return wall / max(1, epochs)
    reports = max(1, int((r.training or {}).get("reports_per_epoch", 1)))
    return (r.train_seconds + max(0.0, wall - r.train_seconds) / reports) / max(1, epochs)


# How validation error falls with training length, for choosing finalists by time: error after
# e times the epochs ≈ error × e^-a. Measured on 20 finalists of earlier final stages (their own
# one-epoch trial against their retraining of 8-51 epochs: `benchmarks/learning_curves.py`), a is
# 0.01-0.22, median 0.07 (0.16 above 4,000 parameters): a net's one-epoch rank mostly holds, and
# length buys little, so a slow net ahead on validation is not given up for a fast one behind it
# (with a = 0.5, as assumed before, a 13,756-parameter net was chosen over a 23,548 one).
LEARNING_CURVE_EXPONENT = 0.1
POOL = 3  # with lengths set by time, finalists come from this many times --final-top candidates
# The longest a length set by time may be: the longest recipe the budgets call for (and beyond
# it the learning curve above is a guess).
MAX_AUTO_EPOCHS = 40


def final_lengths(
    study: optuna.Study,
    top: int,
    seeds: int,
    search_epochs: int,
    seconds_left: float,
    margin: float = MARGINS.lengths,
    max_epochs: int = MAX_AUTO_EPOCHS,
    incumbent: bool = False,
) -> dict[int, int]:
    """Finalists and their epochs (by trial number) when each of the ``top × seeds``
    retrainings gets an equal share of ``seconds_left``.

    A net that trains fast gets more epochs than a slow one, so the stage looks for the best net
    trainable in the time, not the best after one short trial: among the ``POOL × top`` best
    candidates by validation accuracy, the ``top`` with the lowest validation error expected
    after their affordable length (``LEARNING_CURVE_EXPONENT``) are the finalists. Per-epoch
    times come from the candidates' own trials (``epoch_seconds``), with a margin. With
    ``incumbent``, the best warm start is one more finalist, sharing the time, unless it is one
    already."""
    pool = finalists(study, POOL * top)
    inc = _incumbent(study) if incumbent else None

    def plan(extra: int) -> tuple[list[TrialRecord], dict[int, int]]:
        share = seconds_left / max(1, (min(top, len(pool)) + extra) * seeds) / margin

        def epochs(r: TrialRecord) -> int:
            per_epoch = epoch_seconds(r, search_epochs)
            if per_epoch <= 0:
                return search_epochs
            return max(1, min(max_epochs, int(share / per_epoch)))

        def expected_error(r: TrialRecord) -> float:
            return (100.0 - (r.val_accuracy or 0.0)) * (
                epochs(r) / search_epochs
            ) ** -LEARNING_CURVE_EXPONENT

        chosen = sorted(pool, key=lambda r: (expected_error(r), r.n_params or 0))[:top]
        if inc is not None:
            chosen = _and_incumbent(study, chosen)
        return chosen, {r.number: epochs(r) for r in chosen}

    # The incumbent is one more run only when it is not a finalist already: planned as one
    # more, and planned again without it when it is among the finalists (kept if it still is).
    chosen, lengths = plan(1 if inc is not None else 0)
    if inc is not None and len(chosen) <= min(top, len(pool)):
        again, fewer = plan(0)
        if len(again) <= min(top, len(pool)):
            lengths = fewer
    return lengths


class LeaveTimeForFinal:
    """A study callback that stops the search once the time left is what the final stage is
    estimated to need, so that a time limit covers both stages.

    The estimate scales the current top candidates' own per-epoch times (``epoch_seconds``) to
    the final length, with a margin. It waits for
    ``min_trials`` trials of this run: a process's first trials on a GPU run several times slower
    than later ones (kernels load on first use), and an estimate from them alone stopped
    searches after their first trial.
    """

    def __init__(
        self,
        deadline: Deadline,
        top: int,
        seeds: int,
        search_epochs: int,
        final_epochs: int,
        margin: float = MARGINS.reserve,
        min_trials: int = 5,
        stop: StopToken | None = None,
        incumbent: bool = False,
    ):
        self.deadline, self.top, self.seeds, self.margin = deadline, top, seeds, margin
        self.search_epochs, self.final_epochs = search_epochs, final_epochs
        self.min_trials, self.seen = min_trials, 0
        self.stop = stop or StopToken()  # what the runner checks between trials
        self.incumbent = incumbent  # the best warm start is retrained too

    def estimate(self, study: optuna.Study) -> float:
        return (
            self.margin
            * self.seeds
            * self.final_epochs
            * sum(epoch_seconds(r, self.search_epochs) for r in self._finalists(study))
        )

    def _finalists(self, study: optuna.Study) -> list[TrialRecord]:
        return finalists(study, self.top, self.incumbent)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.seen += 1
        need = self.estimate(study)
        left = self.deadline.left() or 0.0
        if self.seen >= self.min_trials and need and left <= need and self.stop.room_left is None:
            self.stop.make_room(left)
            try:
                study.stop()
            except RuntimeError:  # not inside study.optimize: run_parallel checks the token
                pass


class Plan(Protocol):
    """A final stage's length policy: the epochs of a finalist's runs, asked as they start;
    None leaves the length to the final study's protocol."""

    def epochs(self, source: TrialRecord, runs_left: int) -> int | None: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class FixedLength:
    """Every finalist for the length the final stage was given (``--final-epochs N``)."""

    length: int

    def epochs(self, source: TrialRecord, runs_left: int) -> int | None:
        return None

    def describe(self) -> str:
        return f"{self.length} epoch(s) each"


class TimeLeft:
    """Each finalist's length set as it starts: the time left shared by the runs left, at its
    per-epoch time from its search trial, scaled by how the runs this stage already finished
    compared with their own search trials, so the stage ends close to the deadline instead of a
    blanket margin early."""

    def __init__(
        self,
        deadline: Deadline,
        search: optuna.Study,
        final: optuna.Study,
        search_epochs: int,
        max_epochs: int,
        margins: Margins = MARGINS,
    ) -> None:
        self.deadline, self.final, self.margins = deadline, final, margins
        self.search_epochs, self.max_epochs = search_epochs, max_epochs
        self.trials = {t.number: TrialRecord.of(t) for t in search.get_trials(deepcopy=False)}

    def _per_epoch(self, r: TrialRecord) -> float:
        return epoch_seconds(r, r.epochs or self.search_epochs)

    def epochs(self, source: TrialRecord, runs_left: int) -> int | None:
        ratios = [
            self._per_epoch(r) / self._per_epoch(self.trials[r.source_trial])
            for r in records.complete(self.final)
            if r.source_trial in self.trials
            and self._per_epoch(r) > 0
            and self._per_epoch(self.trials[r.source_trial]) > 0
        ]
        seconds = self._per_epoch(source) * (statistics.median(ratios) if ratios else 1.0)
        left = self.deadline.left() or 0.0
        share = left / max(1, runs_left) / seconds if seconds > 0 else 0.0
        # Once this stage's own runs have measured the speed, the length nearest the share (the
        # stage ends within half an epoch of the limit, either side); before, the first run
        # leaves a margin that the later ones then spend.
        epochs = round(share) if ratios else int(share / self.margins.first_run)
        epochs = max(1, min(self.max_epochs, epochs)) if seconds > 0 else self.search_epochs
        log.info(
            "final stage: trial %d gets %d epoch(s): %.0f s left for %d run(s), %.1f s per "
            "epoch expected%s",
            source.number,
            epochs,
            left,
            runs_left,
            seconds,
            f" (measured on {len(ratios)} finished run(s))" if ratios else "",
        )
        return epochs

    def describe(self) -> str:
        return "lengths set from the time left as each starts"
