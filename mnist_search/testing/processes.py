"""For a child process the tests start and then signal: before exec, hear Ctrl-C and a closed
terminal as a terminal's foreground job does, even where pytest itself was started ignoring them
(a background job ignores SIGINT, nohup SIGHUP), which the child would otherwise inherit."""

import os
import signal
from pathlib import Path


def hear_stops() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


# Loaded by every Python process started with the folder below on PYTHONPATH: it appends one
# line per process it starts (the new command line, and its own line at that moment, which a
# forked child shows until it execs) to the file named by MNIST_SEARCH_SPAWN_LOG.
_SITECUSTOMIZE = """
import os, sys

_LOG = os.environ.get("MNIST_SEARCH_SPAWN_LOG")
_EVENTS = {"subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.system"}


def _own_line():
    try:
        with open("/proc/self/cmdline", "rb") as f:
            return f.read().replace(b"\\0", b" ").decode(errors="replace")
    except OSError:
        return " ".join(sys.argv)


def _hook(event, args):
    if event in _EVENTS:
        started = [str(a) for a in args[:2]]  # the program and its arguments, never the env
        with open(_LOG, "a") as f:
            f.write(repr((os.getpid(), event, _own_line(), started)) + "\\n")


if _LOG:
    sys.addaudithook(_hook)
"""


def log_spawns(folder: Path, log: Path) -> dict[str, str]:
    """Environment variables under which every Python process records each process it starts
    (fork, exec, subprocess) in ``log``, through an audit hook: nothing started escapes it, as a
    look at the process list every so often would."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "MNIST_SEARCH_SPAWN_LOG": str(log)}
