"""The write-up's six experiments replayed as fixed trials (``run``), and its findings judged on
them (``summary``)."""

from mnist_search.lazy import exports

_API = {
    "ReplayConfig": "run",
    "run_replay": "run",
    "ReplayRow": "summary",
    "findings": "summary",
}
__all__ = sorted(_API)
__getattr__ = exports(__name__, _API)
