"""Several budgets from one run (``run``), its table and figure (``outputs``), and the smallest
retrained net reaching a validation accuracy (``target``)."""

from mnist_search.lazy import exports

_API = {
    "FrontierConfig": "run",
    "FrontierOutcome": "run",
    "run_frontier": "run",
    "write_outputs": "outputs",
    "smallest_reaching": "target",
}
__all__ = sorted(_API)
__getattr__ = exports(__name__, _API)
