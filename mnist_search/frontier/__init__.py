"""Several budgets from one run (``run``), its table and figure (``outputs``), the smallest
retrained net reaching a validation accuracy (``target``), and its rows written into a folder of
known nets with their provenance (``ship``)."""

from mnist_search.lazy import exports

_API = {
    "FrontierConfig": "run",
    "FrontierOutcome": "run",
    "run_frontier": "run",
    "write_outputs": "outputs",
    "smallest_reaching": "target",
    "ship_rows": "ship",
}
__all__ = sorted(_API)
__getattr__ = exports(__name__, _API)
