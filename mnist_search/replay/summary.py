"""What a replay study says: one row per documented experiment (documented values beside the
mean ± std of its replayed seeds) and the write-up's findings judged on them. Computed here,
drawn by the terminal table, the JSON output and the report."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable

import optuna

from mnist_search.catalog.experiments import PROTOCOL_NAME, get_experiment
from mnist_search.search import records
from mnist_search.search.records import TrialRecord
from mnist_search.stats import Stat, stat

# "Still performs reasonably well": the tool reads it as at least this test accuracy (%), the
# error rate of a plain linear classifier on MNIST being about 8%.
REASONABLE_ACCURACY = 90.0


@dataclass(frozen=True)
class ReplayRow:
    """One documented experiment and what its replayed seeds measured."""

    experiment: int
    title: str
    batch_size: int
    documented_params: int | None
    documented_params_text: str | None
    true_params: int
    count_is_wrong: bool
    note: str | None
    seeds: list[int]
    documented_train_accuracy: float | None
    documented_test_accuracy: float | None
    train_accuracy: Stat | None
    val_accuracy: Stat | None
    test_accuracy: Stat | None
    seconds_per_epoch: Stat | None
    documented_efficiency: float | None  # test accuracy / (params / 1000), as documented
    documented_efficiency_true_count: float | None  # the documented accuracy, the true count
    efficiency: float | None  # the measured accuracy, the true count

    def to_json(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class Finding:
    """One of the write-up's key findings: ``holds`` is None when it was not replayed."""

    id: str
    claim: str
    holds: bool | None
    detail: str


def _plain(v: Any) -> Any:
    if isinstance(v, Stat):
        return v.to_dict()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def summarize(study: optuna.Study, exp_ids: Iterable[int] | None = None) -> list[ReplayRow]:
    """One row per experiment with at least one replayed seed."""
    by_exp: dict[int, list[TrialRecord]] = {}
    for r in records.complete(study):
        if r.protocol == PROTOCOL_NAME and r.experiment is not None:
            by_exp.setdefault(r.experiment, []).append(r)
    rows = []
    for exp_id in sorted(exp_ids if exp_ids is not None else by_exp):
        exp, runs = get_experiment(exp_id), by_exp.get(exp_id, [])
        if not runs:
            continue
        d, true = exp.documented, exp.true_params
        per_epoch = [
            r.train_seconds / r.epochs for r in runs if r.train_seconds is not None and r.epochs
        ]
        test = stat([r.test_accuracy for r in runs])
        rows.append(
            ReplayRow(
                experiment=exp.id,
                title=exp.title,
                batch_size=exp.batch_size,
                documented_params=d.get("params"),
                documented_params_text=d.get("params_text"),
                true_params=true,
                count_is_wrong=exp.count_is_wrong,
                note=exp.note,
                seeds=sorted(r.seed for r in runs if r.seed is not None),
                documented_train_accuracy=d.get("train_accuracy"),
                documented_test_accuracy=d.get("test_accuracy"),
                train_accuracy=stat([r.train_accuracy for r in runs]),
                val_accuracy=stat([r.val_accuracy for r in runs]),
                test_accuracy=test,
                seconds_per_epoch=stat(per_epoch),
                documented_efficiency=_efficiency(d.get("test_accuracy"), d.get("params")),
                documented_efficiency_true_count=_efficiency(d.get("test_accuracy"), true),
                efficiency=_efficiency(test.mean if test else None, true),
            )
        )
    return rows


def _efficiency(accuracy: float | None, params: int | None) -> float | None:
    """The write-up's score: test accuracy / (parameters / 1000)."""
    if accuracy is None or not params:
        return None
    return accuracy / (params / 1000)


def findings(rows: list[ReplayRow]) -> list[Finding]:
    """The write-up's key findings, each judged on the replayed test accuracies."""
    test = {r.experiment: r.test_accuracy for r in rows if r.test_accuracy}

    def compare(key: str, claim: str, better: int, worse: int) -> Finding:
        b, w = test.get(better), test.get(worse)
        if b is None or w is None:
            return Finding(key, claim, None, f"needs Exp{better} and Exp{worse} replayed")
        detail = (
            f"Exp{better} {b}% vs Exp{worse} {w}% test accuracy ({b.mean - w.mean:+.2f} points)"
        )
        return Finding(key, claim, b.mean > w.mean, detail)

    out = [
        compare("a", "batch 128 beats batch 512 on the Exp5/Exp6 architecture", 6, 5),
        compare("b", "the wide→narrow Exp2 beats the baseline Exp1 on test accuracy", 2, 1),
        compare("c", "adding the hidden layer (Exp4) hurts the minimal Exp3", 3, 4),
    ]
    claim = (
        f"Exp3 at 4.4K parameters still performs reasonably well "
        f"(read as: test accuracy >= {REASONABLE_ACCURACY:g}%)"
    )
    exp3 = test.get(3)
    if exp3 is not None:
        out.append(
            Finding(
                "d",
                claim,
                exp3.mean >= REASONABLE_ACCURACY,
                f"Exp3 {exp3}% test accuracy with 4,418 parameters",
            )
        )
    else:
        out.append(Finding("d", claim, None, "needs Exp3 replayed"))
    return out


def to_json(
    rows: list[ReplayRow], found: list[Finding], protocol: dict[str, Any]
) -> dict[str, Any]:
    return {
        "protocol": protocol,
        "experiments": [r.to_json() for r in rows],
        "findings": [asdict(x) for x in found],
    }
