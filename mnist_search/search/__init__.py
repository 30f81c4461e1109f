"""One search: its config (``config``), its study and storage (``study``, ``storage``), the trials
and their records (``objective``, ``runner``, ``records``), the first trials (``warmstart``),
the final stage and its time (``final``, ``final_time``), the trained weights (``artifacts``),
the trial log (``progress``), and ``run_search``, which runs them in order (``engine``)."""

from mnist_search.lazy import exports

_API = {
    "FinalSettings": "config",
    "SearchConfig": "config",
    "SearchOutcome": "engine",
    "run_search": "engine",
    "FinalOutcome": "final",
    "FinalStage": "final",
    "TrialRecord": "records",
    "rank_key": "records",
    "top_trials": "records",
    "open_storage": "storage",
    "open_study": "study",
}
__all__ = sorted(_API)
__getattr__ = exports(__name__, _API)
