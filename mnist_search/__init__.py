"""mnist-search: find the best small CNN for MNIST under a hard parameter budget.

The Python API, in the order of the pipeline::

    from mnist_search import SearchConfig, run_search
    outcome = run_search(SearchConfig(budget=5000, n_trials=3, train_subset=2000, device="cpu"))
    print(outcome.best.n_params, outcome.best.val_accuracy)

Names are imported on first use, so ``import mnist_search`` (and the command line) stays quick.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_API = {
    "ArchSpec": "spec", "ConvLayer": "spec", "count_params": "spec", "describe": "spec",
    "build_model": "model",
    "SearchConfig": "engine", "SearchOutcome": "engine", "run_search": "engine",
    "TrialRecord": "records", "top_trials": "records",
    "SpecFile": "retraining", "retrain": "retraining",
    "ReplayConfig": "replay", "run_replay": "replay",
    "export_study_trial": "export",
    "UsageError": "errors",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
