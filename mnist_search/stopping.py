"""One way to stop. Ctrl-C, and the SIGTERM or SIGHUP a scheduler, container runtime or closed
terminal sends before it kills, all mean the same: stop the running trial at its next batch,
mark it, keep everything finished, and let the same command resume. A ``StopToken`` carries that
request to whoever checks it (the objective at each report); ``stop_on_signals`` sets it."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

# SIGHUP does not exist on Windows.
SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


class StopToken:
    """Set once, from a signal handler; read by the code that can stop cleanly."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def __bool__(self) -> bool:
        return self.signal is not None

    def check(self) -> None:
        """Raise KeyboardInterrupt again if a stop was asked: one that landed inside a database
        call may have been swallowed there."""
        if self.signal is not None:
            raise KeyboardInterrupt(self.signal)


def _as_ctrl_c(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def terminate_like_ctrl_c() -> None:
    """For a whole process: SIGTERM and SIGHUP raise KeyboardInterrupt, as Ctrl-C does, so each
    command's Ctrl-C handling (mark the trial, keep what is done) covers them too."""
    if threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            if s != signal.SIGINT:
                signal.signal(s, _as_ctrl_c)


@contextlib.contextmanager
def stop_on_signals(token: StopToken) -> Iterator[StopToken]:
    """While inside: any of SIGNALS sets ``token`` and raises KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield token  # only the main thread may set handlers; a library caller's own rules hold
        return

    def handler(signum: int, frame: Any) -> None:
        token.signal = token.signal or signal.Signals(signum).name
        raise KeyboardInterrupt(token.signal)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield token
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
