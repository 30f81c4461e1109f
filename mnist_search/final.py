"""The second stage of a search: retrain its best candidates from scratch at full length with
several seeds, choose on mean validation accuracy, and report test accuracy as mean ± std.

The retrainings are fixed trials of a study of their own (``<study>-final``), so they are stored,
shown in the dashboard like any other trial, and a rerun trains only what is missing.
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from .spec import ArchSpec
from .train import PER_RUN



def final_study_name(study_name: str) -> str:
    return f"{study_name}-final"


def recipe(trial: FrozenTrial) -> dict[str, Any]:
    """A finished trial's training settings, without epochs and seed."""
    return {k: v for k, v in trial.user_attrs["training"].items() if k not in PER_RUN}


def _key(t: FrozenTrial) -> tuple[Any, Any]:
    return t.user_attrs.get("source_trial"), t.user_attrs.get("seed")


def enqueue_final(final: optuna.Study, sources: list[FrozenTrial], seeds: int) -> int:
    """Queue (candidate, seed) retrainings not yet finished or queued; return how many to run."""
    trials = final.get_trials(deepcopy=False)
    finished = {_key(t) for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    waiting = {_key(t) for t in trials if t.state == TrialState.WAITING}
    todo = 0
    for src in sources:
        for seed in range(seeds):
            if (src.number, seed) in finished:
                continue
            if (src.number, seed) not in waiting:
                final.enqueue_trial({}, user_attrs={
                    "source_trial": src.number, "seed": seed, "source_value": src.value,
                    "fixed_spec": src.user_attrs["spec"], "fixed_training": recipe(src)},
                    skip_if_exists=False)
            todo += 1
    return todo


@dataclass
class Candidate:
    source_trial: int
    n_params: int
    architecture: str
    spec: dict[str, Any]
    training: dict[str, Any]
    seeds: list[int]
    val: list[float]
    test: list[float]

    @staticmethod
    def _ms(xs: list[float]) -> tuple[float, float]:
        return statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0

    @property
    def val_mean_std(self) -> tuple[float, float]:
        return self._ms(self.val)

    @property
    def test_mean_std(self) -> tuple[float, float]:
        return self._ms(self.test)


def summarize_final(final: optuna.Study, sources: list[FrozenTrial],
                    seeds: int) -> list[Candidate]:
    """One row per candidate with its finished seeds, best mean validation accuracy first."""
    by_source: dict[int, list[FrozenTrial]] = {}
    for t in final.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.user_attrs.get("seed", -1) < seeds:
            by_source.setdefault(t.user_attrs["source_trial"], []).append(t)
    rows = []
    for src in sources:
        runs = sorted(by_source.get(src.number, []), key=lambda t: t.user_attrs["seed"])
        if not runs:
            continue
        rows.append(Candidate(
            src.number, src.user_attrs["n_params"], src.user_attrs["architecture"],
            src.user_attrs["spec"], recipe(src), [t.user_attrs["seed"] for t in runs],
            [t.value for t in runs], [t.user_attrs["test_accuracy"] for t in runs]))
    # Selection looks at validation only; fewer parameters break ties.
    return sorted(rows, key=lambda c: (-c.val_mean_std[0], c.n_params))


def write_spec_file(path: Path, cand: Candidate, epochs: int, meta: dict[str, Any]) -> None:
    """The chosen net as a file ``mnist-search train --spec FILE --seeds N`` reproduces.

    Written to a temporary file and renamed, so a crash never leaves half a file.
    """
    ArchSpec.from_dict(cand.spec)  # refuse to write something that does not load back
    vm, vs = cand.val_mean_std
    tm, ts = cand.test_mean_std
    body = {"spec": cand.spec, "training": cand.training, "epochs": epochs,
            "n_params": cand.n_params, "architecture": cand.architecture,
            "source_trial": cand.source_trial,
            "result": {"seeds": cand.seeds, "val_accuracy": cand.val,
                       "test_accuracy": cand.test, "val_mean": vm, "val_std": vs,
                       "test_mean": tm, "test_std": ts},
            **meta}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    os.replace(tmp, path)


class LeaveTimeForFinal:
    """A study callback that stops the search once the time left is what the final stage is
    estimated to need, so that ``--timeout`` covers both stages.

    The estimate scales the current top candidates' own training times (evaluation excluded: a
    final run validates once per epoch) to the final length, with a margin. It waits for
    ``min_trials`` trials of this run: a process's first trials on a GPU run several times slower
    than later ones (kernels load on first use), and an estimate from them alone stopped
    searches after their first trial.
    """

    def __init__(self, end: float, top: int, seeds: int, search_epochs: int, final_epochs: int,
                 margin: float = 1.25, min_trials: int = 5):
        self.end, self.top, self.seeds, self.margin = end, top, seeds, margin
        self.scale = final_epochs / search_epochs
        self.min_trials, self.seen = min_trials, 0
        self.stopped_with: float | None = None  # seconds left when it stopped the search

    def estimate(self, study: optuna.Study) -> float:
        from .study import top_trials

        best = [t for t in top_trials(study, self.top) if "fixed_spec" not in t.user_attrs]
        return self.margin * self.seeds * self.scale * sum(
            t.user_attrs.get("train_seconds", t.user_attrs.get("seconds", 0.0)) for t in best)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        import time

        self.seen += 1
        need = self.estimate(study)
        left = self.end - time.time()
        if self.seen >= self.min_trials and need and left <= need and self.stopped_with is None:
            self.stopped_with = left
            try:
                study.stop()
            except RuntimeError:  # not inside study.optimize: run_parallel polls stopped_with
                pass
