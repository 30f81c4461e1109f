"""What a trial stores, in one place: the typed record of a trial, how it is written onto an Optuna
trial (as user attributes) and read back, and the queries over a study's trials.

Every user attribute this tool sets is a field of ``TrialRecord``; ``write`` refuses any other
name, so readers and writers cannot drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Iterable

import optuna
from optuna.trial import FrozenTrial, TrialState

from mnist_search.training.loop import PER_RUN


@dataclass(frozen=True)
class TrialRecord:
    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    val_accuracy: float | None  # the objective: validation accuracy (%)
    # What was trained, written before training starts.
    started: float | None = None  # time.time() at the start
    n_params: int | None = None
    architecture: str | None = None  # one line, e.g. "1→8→16 k3 pool@1,2 | fc 400→10"
    spec: dict[str, Any] | None = None  # ArchSpec.to_dict(): enough to rebuild the net
    training: dict[str, Any] | None = None  # TrainConfig.to_dict()
    epochs: int | None = None
    batch_size: int | None = None
    device: str | None = None
    speed: dict[str, Any] | None = None  # Speed.to_dict(), as resolved on the device
    seed: int | None = None
    # What came of it.
    seconds: float | None = None  # wall time of the trial
    train_seconds: float | None = None  # optimisation steps only
    train_accuracy: float | None = None
    test_accuracy: float | None = None  # for reports only, never for selection
    images_per_second: float | None = None
    pruned_reason: str | None = None
    weights_artifact_id: str | None = None
    # Trained in a fused group of this many candidates, led by this trial number.
    fused_k: int | None = None
    fused_group: int | None = None
    # Queued as a warm start from a shipped net (e.g. "found/budget-25000.json").
    warm_start: str | None = None
    # A trial queued with a fixed net instead of a sampled one.
    fixed_spec: dict[str, Any] | None = None
    fixed_training: dict[str, Any] | None = None
    # A final-stage retraining: the search trial it retrains.
    source_trial: int | None = None
    source_value: float | None = None
    # A replayed documented experiment.
    experiment: int | None = None
    experiment_title: str | None = None
    protocol: str | None = None  # the documented protocol's name
    documented_params: int | None = None
    documented_params_text: str | None = None
    documented_train_accuracy: float | None = None
    documented_test_accuracy: float | None = None

    @classmethod
    def of(cls, trial: FrozenTrial | optuna.Trial) -> TrialRecord:
        """The record of a finished trial, or of one still running (no state, no value)."""
        a = trial.user_attrs
        state = getattr(trial, "state", TrialState.RUNNING)
        return cls(
            number=trial.number,
            state=state.name,
            val_accuracy=getattr(trial, "value", None),
            **{k: a[k] for k in STORED if k in a},
        )

    @property
    def is_fixed(self) -> bool:
        """Queued with a fixed net (warm start, final stage), not proposed by the sampler."""
        return self.fixed_spec is not None

    @property
    def over_budget(self) -> bool:
        return (self.pruned_reason or "").startswith("over budget")

    def recipe(self) -> dict[str, Any]:
        """The training settings without what belongs to one run (epochs, seed)."""
        return {k: v for k, v in (self.training or {}).items() if k not in PER_RUN}


STORED = tuple(
    f.name for f in fields(TrialRecord) if f.name not in ("number", "state", "val_accuracy")
)


def write(trial: optuna.Trial, **values: Any) -> None:
    """Store fields of the trial's record (as user attributes)."""
    for key, value in values.items():
        if key not in STORED:
            raise KeyError(f"{key!r} is not a field of TrialRecord")
        trial.set_user_attr(key, value)


def queued(**values: Any) -> dict[str, Any]:
    """User attributes for ``study.enqueue_trial``, checked like ``write``."""
    for key in values:
        if key not in STORED:
            raise KeyError(f"{key!r} is not a field of TrialRecord")
    return values


# --- queries -------------------------------------------------------------------------------------


@dataclass
class Tally:
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    over_budget: int = 0


def tally(trials: Iterable[FrozenTrial]) -> Tally:
    t = Tally()
    for tr in trials:
        if tr.state == TrialState.COMPLETE:
            t.complete += 1
        elif tr.state == TrialState.PRUNED:
            t.pruned += 1
            t.over_budget += TrialRecord.of(tr).over_budget
        elif tr.state == TrialState.FAIL:
            t.failed += 1
    return t


def complete(study: optuna.Study) -> list[TrialRecord]:
    """Every complete trial with a finite value."""
    return [
        TrialRecord.of(t)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]


def top_trials(study: optuna.Study, k: int = 10) -> list[TrialRecord]:
    """The best complete trials by validation accuracy, fewer parameters first on ties."""
    return sorted(complete(study), key=lambda r: (-r.val_accuracy, r.n_params or 0))[:k]
