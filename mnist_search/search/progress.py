"""Progress as log lines: the log set-up, one line per finished trial, a running trial's
validation checks. The engine and the replay log them; the command line decides how they show
(plain lines, or a live footer on a terminal)."""

from __future__ import annotations

import logging
import sys
import time
import warnings

import optuna
from optuna.trial import FrozenTrial

from mnist_search.search.records import Origin, TrialRecord, tally, top_trials

log = logging.getLogger("mnist_search")


class StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is at the time (it may be swapped, as in tests)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:
            self.handleError(record)


class QuietStops(logging.Filter):
    """Optuna logs a trial stopped by Ctrl-C or a stop signal as a failure, traceback and all;
    the command says it in one line of its own, so both of Optuna's lines for it are dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.stopped: set[str] = set()  # "Trial 3"

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        trial, failed, _ = record.getMessage().partition(" failed with")
        if isinstance(error, KeyboardInterrupt):
            self.stopped.add(trial)
            return False
        return not (failed and record.exc_info is None and trial in self.stopped)


def _quiet_stops() -> None:
    optimizing = logging.getLogger("optuna.study._optimize")  # where Optuna logs a failed trial
    if not any(isinstance(f, QuietStops) for f in optimizing.filters):
        optimizing.addFilter(QuietStops())


def setup_logging(prefix: str = "", quiet: bool = False) -> None:
    """Progress to stderr, one line per message (only warnings when ``quiet``); Optuna's own logs
    down to warnings."""
    handlers = [h for h in log.handlers if isinstance(h, StderrHandler)]
    if not handlers:
        handlers = [StderrHandler()]
        log.addHandler(handlers[0])
    handlers[0].setFormatter(logging.Formatter(prefix + "%(message)s"))
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _quiet_stops()
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


class TrialLog:
    """A study callback: one line per finished trial, what it was, how the study stands, and how
    much of this run is left (trials, or time until ``deadline``)."""

    def __init__(self, n_trials: int | None = None, deadline: float | None = None) -> None:
        self.start, self.n_trials, self.deadline, self.done = time.time(), n_trials, deadline, 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.done += 1
        left = []
        if self.n_trials:
            left.append(f"{self.done}/{self.n_trials} trials")
        if self.deadline:
            left.append(f"{max(0.0, self.deadline - time.time()):.0f} s left")
        line, status = trial_line(study, trial, time.time() - self.start)
        tail = f" | {', '.join(left)}" if left else ""
        log.info(line + tail, extra={"kind": "trial", "status": status + tail})


def step_line(text: str) -> None:
    """A running trial's progress (a validation check): a line, or the live footer's last row."""
    log.info(text, extra={"kind": "step"})


def trial_line(study: optuna.Study, trial: FrozenTrial, elapsed: float) -> tuple[str, str]:
    """The line for a finished trial, and the study's standing alone (for a live footer)."""
    t = tally(study.get_trials(deepcopy=False))
    best = top_trials(study, 1)
    r = TrialRecord.of(trial)
    what = (
        f"val {r.val_accuracy:.2f}%"
        if r.val_accuracy is not None
        else r.pruned_reason or r.state.name.lower()
    )
    standing = (
        f"best {best[0].val_accuracy:.2f}% @ {best[0].n_params or 0:,}"
        if best
        else "no complete trial yet"
    )
    name = f"trial {r.number}"
    if r.origin is Origin.FINAL_RUN:
        name = f"final run {r.number} (trial {r.source_trial}, seed {r.seed})"
    status = (
        f"study: {t.complete} complete, {t.pruned} pruned, {t.failed} failed | {standing} "
        f"| {elapsed:.0f}s"
    )
    return (
        f"{name} {r.state.name}: {what} | {r.n_params or 0:,} params {r.architecture or '?'} | "
        f"{r.seconds or 0:.0f}s || {status}"
    ), status
