"""One way to stop, and one way to hold time.

A ``Deadline`` is an immutable point in time (or none); a stage is given one and derives its
part of it. A ``StopToken`` carries the two reasons a search stops before its deadline to
whoever checks it (the runner between trials, the objective at each report): a signal, and the
time the search leaves to its final stage. Ctrl-C, and the SIGTERM or SIGHUP a scheduler,
container runtime or closed terminal sends before it kills, all mean the same: stop the running
trial at its next batch, mark it, keep everything finished, and let the same command resume."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# SIGHUP does not exist on Windows.
SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


@dataclass(frozen=True)
class Deadline:
    """When work must be done, as ``time.time()``; ``at=None``: no time limit."""

    at: float | None = None

    @classmethod
    def after(cls, seconds: float | None) -> Deadline:
        return cls(None if seconds is None else time.time() + seconds)

    def left(self) -> float | None:
        """Seconds left (never below 0), or None without a limit."""
        return None if self.at is None else max(0.0, self.at - time.time())

    def part(self, share: float) -> Deadline:
        """A deadline ``share`` of the way from now to this one (the search's part of a run)."""
        left = self.left()
        return self if left is None else Deadline.after(left * share)


class StopToken:
    """Why a search stops early, set once by whoever decides it, read by whoever can stop."""

    def __init__(self) -> None:
        self.signal: str | None = None  # SIGINT, SIGTERM or SIGHUP
        self.room_left: float | None = None  # seconds left when it made room for the final stage

    def interrupt(self, name: str) -> None:
        self.signal = self.signal or name

    def make_room(self, seconds_left: float) -> None:
        if self.room_left is None:
            self.room_left = seconds_left

    @property
    def stopped(self) -> bool:
        """No new trial should start."""
        return self.signal is not None or self.room_left is not None

    def check(self) -> None:
        """Raise KeyboardInterrupt again if a signal came: one that landed inside a database
        call may have been swallowed there."""
        if self.signal is not None:
            raise KeyboardInterrupt(self.signal)


def _as_ctrl_c(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _heard(s: signal.Signals) -> bool:
    """A signal the process was started ignoring stays ignored: nohup's SIGHUP (the search must
    outlive the terminal), a background job's SIGINT (Ctrl-C is meant for the foreground)."""
    return signal.getsignal(s) is not signal.SIG_IGN


def terminate_like_ctrl_c() -> None:
    """For a whole process: SIGTERM and SIGHUP raise KeyboardInterrupt, as Ctrl-C does, so each
    command's Ctrl-C handling (mark the trial, keep what is done) covers them too."""
    if threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            if s != signal.SIGINT and _heard(s):
                signal.signal(s, _as_ctrl_c)


def obey_the_parent() -> None:
    """For a worker process: its parent passes every stop on as SIGINT, so SIGINT must raise
    KeyboardInterrupt even where the parent was started ignoring it (a job run with ``&``)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    terminate_like_ctrl_c()


@contextlib.contextmanager
def stop_on_signals(token: StopToken) -> Iterator[StopToken]:
    """While inside: any of SIGNALS sets ``token`` and raises KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield token  # only the main thread may set handlers; a library caller's own rules hold
        return

    def handler(signum: int, frame: Any) -> None:
        token.interrupt(signal.Signals(signum).name)
        raise KeyboardInterrupt(token.signal)

    previous = {s: signal.signal(s, handler) for s in SIGNALS if _heard(s)}
    try:
        yield token
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
