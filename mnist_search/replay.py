"""Replay the write-up's six experiments as fixed trials, and check its findings against them.

A replayed experiment is an ordinary trial of an ordinary study (enqueued with fixed parameters),
so it shows in the dashboard beside searched ones and is trained by the same objective.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Iterable

import optuna
from optuna.trial import TrialState

from .experiments import DOCUMENTED_PROTOCOL, PROTOCOL_NAME, Experiment, get_experiment
from .space import spec_params, training_params

REPLAY_STUDY = "documented-experiments"
# "Still performs reasonably well": the tool reads it as at least this test accuracy (%), the
# error rate of a plain linear classifier on MNIST being about 8%.
REASONABLE_ACCURACY = 90.0


def documented_params(exp: Experiment) -> dict[str, Any]:
    """The fixed trial parameters of one experiment under the documented protocol."""
    hp = {**DOCUMENTED_PROTOCOL, "batch_size": exp.batch_size}
    return spec_params(exp.spec) | training_params(hp)


def documented_attrs(exp: Experiment, seed: int) -> dict[str, Any]:
    d = exp.documented
    return {"experiment": exp.id, "experiment_title": exp.title, "protocol": PROTOCOL_NAME,
            "seed": seed, "documented_params": d.get("params"),
            "documented_params_text": d.get("params_text"),
            "documented_train_accuracy": d.get("train_accuracy"),
            "documented_test_accuracy": d.get("test_accuracy")}


def _key(t: optuna.trial.FrozenTrial) -> tuple[Any, Any]:
    return t.user_attrs.get("experiment"), t.user_attrs.get("seed")


def enqueue_replay(study: optuna.Study, exp_ids: Iterable[int], seeds: int) -> tuple[int, int]:
    """Queue the (experiment, seed) runs not yet done or queued. Returns (queued, already done)."""
    trials = study.get_trials(deepcopy=False)
    done = {_key(t) for t in trials if t.state == TrialState.COMPLETE}
    waiting = {_key(t) for t in trials if t.state == TrialState.WAITING}
    queued = skipped = 0
    for exp_id in exp_ids:
        exp = get_experiment(exp_id)
        for seed in range(seeds):
            if (exp.id, seed) in done:
                skipped += 1
                continue
            if (exp.id, seed) not in waiting:
                study.enqueue_trial(documented_params(exp), user_attrs=documented_attrs(exp, seed),
                                    skip_if_exists=False)
            queued += 1
    return queued, skipped


def warm_start(study: optuna.Study, budget: int, space: str = "plain") -> list[str]:
    """Queue the documented architectures that fit ``budget`` as a search's first trials.

    They are points of the plain space; in another space they are queued as fixed specs.

    Returns one message per experiment: queued, already in the study, or over the budget.
    """
    from .experiments import documented_experiments

    messages = []
    present = {t.user_attrs.get("experiment") for t in study.get_trials(deepcopy=False)}
    for exp in documented_experiments():
        if exp.true_params > budget:
            messages.append(f"warm start: Exp{exp.id} skipped, {exp.true_params:,} parameters "
                            f"are over the budget of {budget:,}")
        elif exp.id in present:
            messages.append(f"warm start: Exp{exp.id} is already in the study")
        else:
            attrs = documented_attrs(exp, 0)
            if space == "plain":
                study.enqueue_trial(documented_params(exp), user_attrs=attrs)
            else:
                hp = {**DOCUMENTED_PROTOCOL, "batch_size": exp.batch_size}
                study.enqueue_trial({}, user_attrs={**attrs, "fixed_spec": exp.spec.to_dict(),
                                                    "fixed_training": hp})
            messages.append(f"warm start: Exp{exp.id} queued ({exp.true_params:,} parameters, "
                            f"batch {exp.batch_size})")
    return messages


@dataclass
class Stat:
    mean: float
    std: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.2f} ± {self.std:.2f}"

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std, "n": self.n}


def stat(values: list[float]) -> Stat | None:
    if not values:
        return None
    return Stat(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0,
                len(values))


def summarize(study: optuna.Study, exp_ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """One row per experiment: documented values beside the mean ± std of its replayed seeds."""
    by_exp: dict[int, list[optuna.trial.FrozenTrial]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.user_attrs.get("protocol") == PROTOCOL_NAME:
            by_exp.setdefault(t.user_attrs["experiment"], []).append(t)
    rows = []
    for exp_id in sorted(exp_ids if exp_ids is not None else by_exp):
        exp, trials = get_experiment(exp_id), by_exp.get(exp_id, [])
        if not trials:
            continue
        d, true = exp.documented, exp.true_params
        per_epoch = [t.user_attrs["train_seconds"] / t.user_attrs["epochs"] for t in trials
                     if "train_seconds" in t.user_attrs]
        test = stat([t.user_attrs["test_accuracy"] for t in trials])
        rows.append({
            "experiment": exp.id, "title": exp.title, "batch_size": exp.batch_size,
            "documented_params": d.get("params"), "documented_params_text": d.get("params_text"),
            "true_params": true, "count_is_wrong": exp.count_is_wrong, "note": exp.note,
            "seeds": sorted(t.user_attrs["seed"] for t in trials),
            "documented_train_accuracy": d.get("train_accuracy"),
            "documented_test_accuracy": d.get("test_accuracy"),
            "train_accuracy": stat([t.user_attrs["train_accuracy"] for t in trials]),
            "val_accuracy": stat([t.value for t in trials]),
            "test_accuracy": test,
            "seconds_per_epoch": stat(per_epoch),
            "documented_efficiency": _efficiency(d.get("test_accuracy"), d.get("params")),
            "documented_efficiency_true_count": _efficiency(d.get("test_accuracy"), true),
            "efficiency": _efficiency(test.mean if test else None, true),
        })
    return rows


def _efficiency(accuracy: float | None, params: int | None) -> float | None:
    """The write-up's score: test accuracy / (parameters / 1000)."""
    if accuracy is None or not params:
        return None
    return accuracy / (params / 1000)


def findings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The write-up's key findings, each: holds (True/False), or None when not replayed."""
    test = {r["experiment"]: r["test_accuracy"] for r in rows if r["test_accuracy"]}

    def compare(key: str, claim: str, better: int, worse: int) -> dict[str, Any]:
        if better not in test or worse not in test:
            return {"id": key, "claim": claim, "holds": None,
                    "detail": f"needs Exp{better} and Exp{worse} replayed"}
        b, w = test[better], test[worse]
        return {"id": key, "claim": claim, "holds": b.mean > w.mean,
                "detail": f"Exp{better} {b}% vs Exp{worse} {w}% test accuracy "
                          f"({b.mean - w.mean:+.2f} points)"}

    out = [
        compare("a", "batch 128 beats batch 512 on the Exp5/Exp6 architecture", 6, 5),
        compare("b", "the wide→narrow Exp2 beats the baseline Exp1 on test accuracy", 2, 1),
        compare("c", "adding the hidden layer (Exp4) hurts the minimal Exp3", 3, 4),
    ]
    claim = (f"Exp3 at 4.4K parameters still performs reasonably well "
             f"(read as: test accuracy >= {REASONABLE_ACCURACY:g}%)")
    if 3 in test:
        out.append({"id": "d", "claim": claim, "holds": test[3].mean >= REASONABLE_ACCURACY,
                    "detail": f"Exp3 {test[3]}% test accuracy with 4,418 parameters"})
    else:
        out.append({"id": "d", "claim": claim, "holds": None, "detail": "needs Exp3 replayed"})
    return out


def to_json(rows: list[dict[str, Any]], found: list[dict[str, Any]],
            protocol: dict[str, Any]) -> dict[str, Any]:
    def plain(v: Any) -> Any:
        if isinstance(v, Stat):
            return v.to_dict()
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    return {"protocol": protocol,
            "experiments": [{k: plain(v) for k, v in r.items()} for r in rows],
            "findings": found}
