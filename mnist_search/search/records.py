"""What a trial stores, in one place: the typed record of a trial, how it is written onto an Optuna
trial (as user attributes) and read back, and the queries over a study's trials.

Every user attribute this tool sets is a field of ``TrialRecord``; ``write`` refuses any other
name, so readers and writers cannot drift apart.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Hashable, Iterable

import optuna
from optuna.trial import FrozenTrial, TrialState

from mnist_search.training.loop import PER_RUN


class Origin(enum.Enum):
    """Where a trial's net came from."""

    SAMPLED = "sampled"  # proposed by the sampler from the search space
    WARM_START = "warm start"  # a shipped net fitted to the budget, queued as space parameters
    FIXED = "fixed"  # queued with a fixed net (a documented net in a space it is not a point of)
    FINAL_RUN = "final run"  # a final-stage retraining of a search trial
    REPLAY = "replay"  # a seed replica of a documented experiment


OVER_BUDGET = "over budget"  # how a pruned_reason for a net over the budget starts


@dataclass(frozen=True)
class TrialRecord:
    number: int
    state: TrialState
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
    dataset: str | None = None  # the data it was trained and judged on (None: before datasets)
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
    warm_from_params: int | None = None  # that net's own parameter count, before fitting
    # Queued as point k of the search's space-filling start-up design (a sampled net).
    design: int | None = None
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
            state=state,
            val_accuracy=getattr(trial, "value", None),
            **{k: a[k] for k in STORED if k in a},
        )

    @property
    def is_fixed(self) -> bool:
        """Queued with a fixed net (warm start, final stage), not proposed by the sampler."""
        return self.fixed_spec is not None

    @property
    def over_budget(self) -> bool:
        return (self.pruned_reason or "").startswith(OVER_BUDGET)

    @property
    def origin(self) -> Origin:
        if self.source_trial is not None:
            return Origin.FINAL_RUN
        if self.experiment is not None:
            return Origin.REPLAY
        if self.warm_start is not None:
            return Origin.WARM_START
        return Origin.FIXED if self.is_fixed else Origin.SAMPLED

    @property
    def _fitted(self) -> str:
        """How the warm start fitted a shipped net's widths (trials queued before the count was
        recorded read as widened)."""
        was, now = self.warm_from_params, self.n_params
        if was is None or now is None or now > was:
            return "widened to the budget"
        return "at its own widths" if now == was else "narrowed to the budget"

    @property
    def provenance(self) -> str:
        """Where the net came from, in words a summary and a spec file can carry."""
        return {
            Origin.SAMPLED: "sampled by this search",
            Origin.WARM_START: (
                f"a shipped net {self._fitted} ({self.warm_start})"
                if (self.warm_start or "").startswith("found/")
                else f"a net found at a smaller budget, widened to this one ({self.warm_start})"
            ),
            Origin.FIXED: "a fixed net queued into the search",
            Origin.FINAL_RUN: f"a final-stage retraining of trial {self.source_trial}",
            Origin.REPLAY: f"documented experiment {self.experiment}",
        }[self.origin]

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


def queue_missing(
    study: optuna.Study,
    runs: Iterable[tuple[Hashable, dict[str, Any], dict[str, Any]]],
    key: Callable[[TrialRecord], Hashable],
    finished: tuple[TrialState, ...] = (TrialState.COMPLETE,),
    pending: tuple[TrialState, ...] = (TrialState.WAITING,),
) -> tuple[int, int]:
    """Queue each wanted run ``(key, params, user_attrs)`` that no trial has finished and none
    waits for yet (trials are matched by ``key`` of their record). Returns (runs still to train,
    runs already finished): a rerun trains only what is missing, and never queues a run twice."""
    trials = [TrialRecord.of(t) for t in study.get_trials(deepcopy=False)]
    done = {key(t) for t in trials if t.state in finished}
    waiting = {key(t) for t in trials if t.state in pending}
    todo = skipped = 0
    for k, params, attrs in runs:
        if k in done:
            skipped += 1
            continue
        if k not in waiting:
            study.enqueue_trial(params, user_attrs=queued(**attrs), skip_if_exists=False)
        todo += 1
    return todo, skipped


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


@dataclass(frozen=True)
class FinalRun:
    """A finished final-stage retraining: every field a summary needs, none optional."""

    source_trial: int
    seed: int
    val_accuracy: float
    test_accuracy: float
    epochs: int | None
    training: dict[str, Any] | None = None  # the recipe it was queued with

    @classmethod
    def of(cls, r: TrialRecord) -> FinalRun | None:
        """None for a record that is not a finished retraining (another kind of trial)."""
        if (
            r.source_trial is None
            or r.seed is None
            or r.val_accuracy is None
            or r.test_accuracy is None
        ):
            return None
        return cls(
            r.source_trial, r.seed, r.val_accuracy, r.test_accuracy, r.epochs, r.fixed_training
        )


def final_runs(study: optuna.Study) -> list[FinalRun]:
    """Every finished retraining of a final study."""
    return [f for f in map(FinalRun.of, complete(study)) if f is not None]


def complete(study: optuna.Study) -> list[TrialRecord]:
    """Every complete trial with a finite value."""
    return [
        TrialRecord.of(t)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]


def rank_key(r: TrialRecord) -> tuple[float, int]:
    """How trials rank wherever one is chosen: validation accuracy, fewer parameters on ties;
    never the test accuracy a trial also records."""
    return -(r.val_accuracy or 0.0), r.n_params or 0


def top_trials(study: optuna.Study, k: int = 10) -> list[TrialRecord]:
    """The best complete trials by validation accuracy, fewer parameters first on ties."""
    return sorted(complete(study), key=rank_key)[:k]
