"""Objective and study: sample a candidate, enforce the budget, train it, report to the pruner.

A study stores its budget, search-space version and protocol as user attributes, so a later run
(or another worker) that asks for different ones is refused instead of mixing results.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from .data import Splits
from .space import get_space
from .spec import ArchSpec, count_params, describe
from .train import PER_RUN, Diverged, Speed, TimeUp, TrainConfig, TrainResult, train

PRUNERS = ("median", "hyperband", "none")
UNCAPPED = 10**9  # the budget of a study without one


class StudyError(ValueError):
    """A study or storage that cannot be used as asked."""


@dataclass(frozen=True)
class Protocol:
    """How every candidate of a study is trained and judged (the same for all trials)."""

    epochs: int = 1
    train_subset: int | None = None
    val_size: int = 5000
    split_seed: int = 0
    # Short runs are judged several times per epoch so the pruner can stop them early.
    reports_per_epoch: int = 0  # 0: 4 for runs of up to 2 epochs, else 1

    @property
    def reports(self) -> int:
        return self.reports_per_epoch or (4 if self.epochs <= 2 else 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- storage -------------------------------------------------------------------------------------

def default_storage(study_name: str) -> str:
    return f"sqlite:///studies/{study_name}.db"


def check_storage_url(url: str) -> None:
    """Reject a URL that cannot work before anything is created."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StudyError(f"storage URL {url!r} is malformed; expected for example "
                         "sqlite:///studies/NAME.db or postgresql://USER@HOST/DB") from None
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if not db or db == ":memory:":
            raise StudyError(f"storage URL {url!r} names no database file; expected "
                             "sqlite:///path/to/file.db")
        parent = Path(db).expanduser().resolve().parent
        if not parent.is_dir():
            raise StudyError(f"storage URL {url!r}: folder {parent} does not exist")


def check_reachable(url: str) -> None:
    """Connect once to a database server, writing nothing, so a bad host or password is found
    before any work starts. (A SQLite file needs no server.)"""
    if url.startswith("sqlite"):
        return
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 10}
                                          if url.startswith("postgresql") else {})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as e:
        raise StudyError(f"storage {url!r} is unusable: {str(e).splitlines()[0]}") from None


def open_storage(url: str, heartbeat: int | None = None) -> optuna.storages.RDBStorage:
    """An RDB storage. With ``heartbeat`` (seconds), a running trial whose process stops beating
    for three intervals is marked FAIL by the next worker to start a trial, and queued again."""
    check_storage_url(url)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Wait for a lock instead of failing with "database is locked" when workers share a file.
        kwargs["connect_args"] = {"timeout": 60}
    elif url.startswith("postgresql"):
        kwargs["connect_args"] = {"connect_timeout": 10}
    beat: dict[str, Any] = {}
    if heartbeat:
        beat = {"heartbeat_interval": heartbeat, "grace_period": 3 * heartbeat,
                "heartbeat_stale_trial_callback":
                    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, **beat)
    except Exception as e:
        raise StudyError(f"storage {url!r} is unusable: {str(e).splitlines()[0]}") from None


# --- study ---------------------------------------------------------------------------------------

def make_pruner(name: str, protocol: Protocol) -> optuna.pruners.BasePruner:
    if name == "median":
        # Compare each trial with the median of earlier ones at the same report step; wait for 5
        # trials and skip the first report, where every net is still near chance.
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=protocol.epochs * protocol.reports, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise StudyError(f"pruner {name!r}; valid: {', '.join(PRUNERS)}")


def open_study(storage: optuna.storages.BaseStorage, study_name: str, budget: int | None,
               protocol: Protocol, *, seed: int | None = None,
               pruner: str = "median", space: str = "modern") -> optuna.Study:
    """Create the study, or load it after checking it was made for the same search.

    ``budget`` None means no cap (a study of fixed trials, such as the documented experiments).
    """
    wanted = {"budget": budget, "space_version": get_space(space).version,
              "protocol": protocol.to_dict()}
    sampler = optuna.samplers.TPESampler(seed=seed)
    try:
        storage.get_study_id_from_name(study_name)
        exists = True
    except KeyError:
        exists = False
    if exists:
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler,
                                  pruner=make_pruner(pruner, protocol))
        if study.direction != optuna.study.StudyDirection.MAXIMIZE:
            raise StudyError(f"study {study_name!r} exists with direction "
                             f"{study.direction.name}; this tool needs MAXIMIZE (use another "
                             "--study-name)")
        stored = study.user_attrs
        for key, value in wanted.items():
            if key in stored and stored[key] != value:
                raise StudyError(f"study {study_name!r} exists with {key}={stored[key]}, not "
                                 f"{value}; use that {key} or another --study-name")
        return study
    study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize",
                                sampler=sampler, pruner=make_pruner(pruner, protocol))
    for key, value in wanted.items():
        study.set_user_attr(key, value)
    return study


class Objective:
    """The objective: validation accuracy (%) after the protocol's training.

    Split in three steps so that several trials can share one fused training (``parallel.py``):
    ``prepare`` samples the trial and enforces the budget, ``reporter`` feeds the pruner, and
    ``finish`` records a result. ``__call__`` runs them for one trial.

    ``deadline`` (a ``time.time()`` value) stops a trial still training when the search's time is
    up; it is recorded as pruned with that reason. ``progress`` receives a line per validation.
    A trial enqueued with a ``seed`` user attribute trains with that seed (seed replicas).
    With an ``artifact_store``, each completed trial's weights are stored there.
    A trial enqueued with ``fixed_spec`` and ``fixed_training`` user attributes trains that spec
    with those settings instead of sampling (the final retraining of a two-stage search).
    """

    def __init__(self, budget: int | None, protocol: Protocol, splits: Splits, *,
                 base_seed: int = 0, deadline: float | None = None,
                 progress: Callable[[str], None] | None = None, artifact_store: Any = None,
                 speed: Speed = Speed(), space: str = "modern"):
        self.space = get_space(space)
        self.budget, self.protocol, self.splits = budget, protocol, splits
        self.cap = budget if budget is not None else UNCAPPED
        self.base_seed, self.deadline, self.progress = base_seed, deadline, progress
        self.artifact_store, self.speed = artifact_store, speed
        self.device = splits.train.images.device

    def prepare(self, trial: optuna.Trial) -> tuple[ArchSpec, TrainConfig]:
        trial.set_user_attr("started", time.time())
        fixed = trial.user_attrs.get("fixed_spec")
        if fixed is not None:
            spec = ArchSpec.from_dict(fixed)
            hp = {k: v for k, v in trial.user_attrs["fixed_training"].items()
                  if k not in PER_RUN}
        else:
            spec = self.space.suggest_spec(trial, self.cap)
            hp = self.space.suggest_training(trial)
        n = count_params(spec)
        trial.set_user_attr("n_params", n)
        trial.set_user_attr("architecture", describe(spec))
        trial.set_user_attr("spec", spec.to_dict())
        trial.set_user_attr("epochs", self.protocol.epochs)
        trial.set_user_attr("batch_size", hp["batch_size"])
        trial.set_user_attr("device", str(self.device))
        trial.set_user_attr("speed", self.speed.resolve(self.device,
                                                        self.protocol.epochs).to_dict())
        # Feasible when <= 0; TPE ranks infeasible trials below every feasible one.
        trial.set_constraint("budget", n - self.cap)
        if n > self.cap:
            trial.set_user_attr("pruned_reason",
                                f"over budget: {n:,} > {self.budget:,} parameters")
            self._seconds(trial)
            raise optuna.TrialPruned(f"over budget ({n} > {self.budget})")
        seed = trial.user_attrs.get("seed", self.base_seed + trial.number)
        trial.set_user_attr("seed", seed)
        cfg = TrainConfig(epochs=self.protocol.epochs, reports_per_epoch=self.protocol.reports,
                          seed=seed, **hp)
        trial.set_user_attr("training", cfg.to_dict())
        return spec, cfg

    def reporter(self, trial: optuna.Trial) -> Callable[[int, float], None]:
        total_steps = self.protocol.epochs * self.protocol.reports

        def on_report(step: int, val: float) -> None:
            trial.report(val, step)
            if self.progress is not None:
                self.progress(f"  trial {trial.number}: {100 * (step + 1) // total_steps}% "
                              f"trained, val {val:.2f}%")
            if trial.should_prune():
                trial.set_user_attr("pruned_reason", f"pruned at step {step}: val {val:.2f}%")
                raise optuna.TrialPruned(f"val {val:.2f}% at step {step}")

        return on_report

    def _seconds(self, trial: optuna.Trial) -> None:
        trial.set_user_attr("seconds", round(time.time() - trial.user_attrs["started"], 3))

    def finish(self, trial: optuna.Trial, outcome: TrainResult | BaseException) -> float:
        """Record a training's result on the trial, or turn its failure into a pruned trial."""
        self._seconds(trial)
        if isinstance(outcome, Diverged):
            trial.set_user_attr("pruned_reason", f"diverged: {outcome}")
            raise optuna.TrialPruned(str(outcome))
        if isinstance(outcome, TimeUp):
            trial.set_user_attr("pruned_reason", f"stopped: {outcome}")
            raise optuna.TrialPruned(str(outcome))
        if isinstance(outcome, BaseException):
            raise outcome
        trial.set_user_attr("train_accuracy", outcome.train_accuracy)
        trial.set_user_attr("test_accuracy", outcome.test_accuracy)  # reports only, never selection
        trial.set_user_attr("train_seconds", round(outcome.train_seconds, 3))
        trial.set_user_attr("images_per_second", round(outcome.images_per_second, 1))
        if self.artifact_store is not None:
            from .artifacts import save_weights

            save_weights(trial, outcome.model, self.artifact_store)
        return outcome.val_accuracy

    def __call__(self, trial: optuna.Trial) -> float:
        spec, cfg = self.prepare(trial)
        try:
            outcome: TrainResult | BaseException = train(
                spec, cfg, self.splits, on_report=self.reporter(trial), deadline=self.deadline,
                keep_model=self.artifact_store is not None, speed=self.speed)
        except (Diverged, TimeUp) as e:
            outcome = e
        except BaseException:
            self._seconds(trial)
            raise
        return self.finish(trial, outcome)


def make_objective(budget: int | None, protocol: Protocol, splits: Splits,
                   **kwargs: Any) -> Objective:
    return Objective(budget, protocol, splits, **kwargs)


# --- results -------------------------------------------------------------------------------------

@dataclass
class Tally:
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    over_budget: int = 0


def tally(trials: list[FrozenTrial]) -> Tally:
    t = Tally()
    for tr in trials:
        if tr.state == TrialState.COMPLETE:
            t.complete += 1
        elif tr.state == TrialState.PRUNED:
            t.pruned += 1
            if str(tr.user_attrs.get("pruned_reason", "")).startswith("over budget"):
                t.over_budget += 1
        elif tr.state == TrialState.FAIL:
            t.failed += 1
    return t


def top_trials(study: optuna.Study, k: int = 10) -> list[FrozenTrial]:
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value)]
    return sorted(done, key=lambda t: (-t.value, t.user_attrs.get("n_params", 0)))[:k]


def trial_row(t: FrozenTrial) -> dict[str, Any]:
    a = t.user_attrs
    return {"trial": t.number, "n_params": a.get("n_params"), "architecture": a.get("architecture"),
            "val_accuracy": t.value, "test_accuracy": a.get("test_accuracy"),
            "seconds": a.get("seconds"), "batch_size": a.get("batch_size"),
            "optimizer": t.params.get("optimizer")}
