"""What a study's report shows, computed from the storage as plain data (tested on its own):
the trials' accuracy against size, the Pareto front, learning curves, the documented
experiments and the final stage. ``report.py`` draws it."""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.trial import TrialState

from mnist_search.catalog.experiments import documented_experiments
from mnist_search.replay.summary import ReplayRow
from mnist_search.search.records import TrialRecord, complete, tally, top_trials
from mnist_search.search.study import StudyAttrs


def accuracy_points(study: optuna.Study) -> list[dict[str, Any]]:
    """Every complete trial: parameters, validation and test accuracy."""
    pts = [
        {
            "trial": r.number,
            "n_params": r.n_params,
            "val": r.val_accuracy,
            "test": r.test_accuracy,
            "architecture": r.architecture or "",
        }
        for r in complete(study)
        if r.n_params is not None
    ]
    return sorted(pts, key=lambda p: (p["n_params"], -p["val"]))


def pareto_front(points: list[dict[str, Any]], key: str = "val") -> list[dict[str, Any]]:
    """Points no other point beats on both counts (fewer or equal parameters, higher accuracy)."""
    front, best = [], -math.inf
    for p in sorted(points, key=lambda p: (p["n_params"], -p[key])):
        if p[key] > best:
            front.append(p)
            best = p[key]
    return front


def documented_points(replay_rows: list[ReplayRow] | None = None) -> list[dict[str, Any]]:
    """The six experiments at their true counts: documented test accuracy, and measured mean ± std
    where they were replayed."""
    measured = {r.experiment: r for r in replay_rows or []}
    out = []
    for e in documented_experiments():
        r = measured.get(e.id)
        test = r.test_accuracy if r else None
        out.append(
            {
                "experiment": e.id,
                "n_params": e.true_params,
                "documented_test": e.documented.get("test_accuracy"),
                "measured_test": test.mean if test else None,
                "measured_std": test.std if test else None,
                "seeds": len(r.seeds) if r else 0,
                "label": f"Exp{e.id}",
            }
        )
    return out


def learning_curves(study: optuna.Study) -> list[dict[str, Any]]:
    """Validation accuracy at each report step, for complete and pruned trials."""
    curves = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if not t.intermediate_values:
            continue
        steps = sorted(t.intermediate_values)
        curves.append(
            {
                "trial": t.number,
                "state": t.state.name,
                "steps": steps,
                "values": [t.intermediate_values[s] for s in steps],
            }
        )
    return curves


def final_stage(search: optuna.Study, final: optuna.Study | None) -> dict[str, Any] | None:
    """The search's final stage as the run ended it: each retrained candidate with its length,
    validation and test mean ± std and where it came from, and the one chosen (on validation:
    the best mean among candidates with every seed)."""
    from mnist_search.search.final import summarize_final

    runs = complete(final) if final is not None else []
    if final is None or not runs:
        return None
    by_number = {t.number: TrialRecord.of(t) for t in search.get_trials(deepcopy=False)}
    numbers = sorted({r.source_trial for r in runs if r.source_trial in by_number})
    seeds = max(len({r.seed for r in runs if r.source_trial == n}) for n in numbers)
    candidates = summarize_final(final, [by_number[n] for n in numbers], seeds)
    chosen = next((c for c in candidates if len(c.seeds) == seeds), None)
    return {
        "study": final.study_name,
        "seeds": seeds,
        "chosen": chosen.source_trial if chosen is not None else None,
        "candidates": [
            {
                "trial": c.source_trial,
                "n_params": c.n_params,
                "architecture": c.architecture,
                "epochs": c.epochs,
                "seeds": len(c.seeds),
                "val_mean": c.val_stat.mean,
                "val_std": c.val_stat.std,
                "test_mean": c.test_stat.mean,
                "test_std": c.test_stat.std,
                "origin": c.origin,
            }
            for c in candidates
        ],
    }


def report_data(
    study: optuna.Study,
    replay_rows: list[ReplayRow] | None = None,
    top: int = 15,
    final: optuna.Study | None = None,
) -> dict[str, Any]:
    points = accuracy_points(study)
    t = tally(study.get_trials(deepcopy=False))
    attrs = StudyAttrs.of(study)
    return {
        "study": study.study_name,
        "budget": attrs.budget,
        "protocol": attrs.protocol.to_dict(),
        "points": points,
        "front": pareto_front(points),
        "documented": documented_points(replay_rows),
        "curves": learning_curves(study),
        "top": top_trials(study, top),
        "final": final_stage(study, final),
        "counts": {
            "complete": t.complete,
            "pruned": t.pruned,
            "failed": t.failed,
            "over_budget": t.over_budget,
        },
    }


def final_study_of(search: optuna.Study) -> optuna.Study | None:
    """The search's final stage in the same storage (``-final-auto`` or ``-final``, either
    with ``-augment-S`` after it); the one that ran last when several exist."""
    from mnist_search.search.final import final_study_names

    found = []
    for name in final_study_names(search.study_name, optuna.get_all_study_names(search._storage)):
        try:
            final = optuna.load_study(study_name=name, storage=search._storage)
        except KeyError:
            continue
        ends = [
            t.datetime_complete for t in final.get_trials(deepcopy=False) if t.datetime_complete
        ]
        if ends:
            found.append((max(ends), final))
    return max(found, key=lambda f: f[0])[1] if found else None
