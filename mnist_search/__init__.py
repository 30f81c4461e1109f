"""mnist-search: find the best small CNN for MNIST under a hard parameter budget.

The Python API, in the order of the pipeline::

    from mnist_search import Protocol, RunSettings, SearchConfig, run_search
    outcome = run_search(SearchConfig(budget=5000, n_trials=3, protocol=Protocol(train_subset=2000),
                                      run=RunSettings(device="cpu")))
    print(outcome.best.n_params, outcome.best.val_accuracy)

Names are imported on first use, so ``import mnist_search`` (and the command line) stays quick.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_API = {
    "ArchSpec": "net.spec",
    "ConvLayer": "net.spec",
    "count_params": "net.spec",
    "describe": "net.spec",
    "build_model": "net.model",
    "Protocol": "training.protocol",
    "RunSettings": "training.settings",
    "SearchConfig": "search.config",
    "FinalSettings": "search.config",
    "SearchOutcome": "search.engine",
    "run_search": "search.engine",
    "TrialRecord": "search.records",
    "top_trials": "search.records",
    "SpecFile": "training.retrain",
    "retrain": "training.retrain",
    "ReplayConfig": "replay.run",
    "run_replay": "replay.run",
    "export_study_trial": "outputs.export",
    "UsageError": "errors",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
