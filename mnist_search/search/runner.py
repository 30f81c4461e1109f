"""Run a study K candidates at a time through one fused training (``--parallel K``).

Groups are candidates that share every shape: the seed replicas a replay queued (identical fixed
parameters), or, in a search, one sampled architecture plus K-1 variants of it whose training
settings the sampler picks (the space's ``free`` parameters: learning rate, weight decay,
schedule, augmentation...; everything else fixed to the first's). Each member of a fused group
records ``fused_k`` and ``fused_group`` (the number of the group's first trial). A queued net
that is not a seed replica (a warm start, a final retraining) is a group of one: the variants
are queued too, and would queue behind it.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from mnist_search.search import records
from mnist_search.search.objective import Objective
from mnist_search.search.records import TrialRecord
from mnist_search.stopping import StopToken
from mnist_search.training.fused import FusedError, check_fusable, train_fused
from mnist_search.training.loop import Diverged, train
from mnist_search.training.steps import TimeUp


def _next_waiting(study: optuna.Study) -> FrozenTrial | None:
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return min(waiting, key=lambda t: t.number) if waiting else None


def _replica_key(trial: FrozenTrial | optuna.Trial) -> tuple | None:
    """Queued seed replicas of a documented experiment: same experiment, same protocol."""
    r = TrialRecord.of(trial)
    return (r.experiment, r.protocol) if r.experiment is not None else None


def _ask_group(study: optuna.Study, k: int) -> list[optuna.Trial]:
    first = study.ask()
    group = [first]
    key = _replica_key(first)
    while key is not None and len(group) < k:
        nxt = _next_waiting(study)
        if nxt is None or _replica_key(nxt) != key:
            break
        group.append(study.ask())
    return group


def _variants(
    study: optuna.Study, first: optuna.Trial, k: int, free: tuple[str, ...]
) -> list[optuna.Trial]:
    """K-1 more trials that keep every parameter of ``first`` but the space's free ones."""
    keep = {n: v for n, v in first.params.items() if n not in free}
    for _ in range(k - 1):
        study.enqueue_trial(keep, skip_if_exists=False)
    return [study.ask() for _ in range(k - 1)]


def run_trials(
    study: optuna.Study,
    objective: Objective,
    k: int = 1,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
    stop: StopToken | None = None,
) -> None:
    """``study.optimize`` for K = 1 (with its heartbeats); fused groups of K otherwise. No new
    trial starts once ``stop`` is set."""
    if k == 1:
        study.optimize(
            objective, n_trials=n_trials, timeout=timeout, callbacks=list(callbacks), catch=()
        )
    else:
        run_parallel(
            study, objective, k, n_trials=n_trials, timeout=timeout, callbacks=callbacks, stop=stop
        )


def run_parallel(
    study: optuna.Study,
    objective: Objective,
    k: int,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
    stop: StopToken | None = None,
) -> None:
    """Like ``study.optimize(objective, n_trials, timeout)``, K candidates per training. A set
    ``stop`` token ends the run after the current group (``study.stop()`` is for ``optimize``
    only)."""
    start, done = time.time(), 0
    while (
        (n_trials is None or done < n_trials)
        and (timeout is None or time.time() - start < timeout)
        and not (stop is not None and stop.stopped)
    ):
        room = k if n_trials is None else min(k, n_trials - done)
        group = _ask_group(study, room)
        told: set[int] = set()

        def tell(trial: optuna.Trial, value=None, state=TrialState.COMPLETE) -> None:
            frozen = (
                study.tell(trial, value, state=state)
                if value is not None
                else study.tell(trial, state=state)
            )
            told.add(trial.number)
            for cb in callbacks:
                cb(study, frozen)

        try:
            members = []  # (trial, spec, cfg)
            for i, trial in enumerate(group):
                try:
                    spec, cfg = objective.prepare(trial)
                except optuna.TrialPruned:
                    tell(trial, state=TrialState.PRUNED)
                    continue
                members.append((trial, spec, cfg))
                queued = TrialRecord.of(trial)
                if (
                    i == 0
                    and len(group) == 1
                    and room > 1
                    and _replica_key(trial) is None
                    and not queued.is_fixed
                    and queued.warm_start is None
                    # Variants are asked for at once: only when nothing else is queued ahead
                    # of them (warm starts, the start-up design), each trained alone.
                    and _next_waiting(study) is None
                ):
                    group += _variants(study, trial, room, objective.space.free)
            outcomes = _train(objective, members)
            for (trial, _, _), outcome in zip(members, outcomes):
                try:
                    tell(trial, objective.finish(trial, outcome))
                except optuna.TrialPruned:
                    tell(trial, state=TrialState.PRUNED)
        except BaseException:
            for trial in group:
                if trial.number not in told:
                    study.tell(trial, state=TrialState.FAIL)
            raise
        done += len(group)


def _train(objective: Objective, members: list) -> list:
    if not members:
        return []
    spec = members[0][1]
    keep = objective.artifact_store is not None
    if len(members) > 1:
        cfgs = [m[2] for m in members]
        if any(m[1] != spec for m in members):
            raise FusedError(
                f"trials {[m[0].number for m in members]} were grouped for fused "
                f"training but have different nets"
            )
        check_fusable(spec, cfgs)  # a group is built to fuse; a reason here is a bug
        for trial, _, _ in members:
            records.write(trial, fused_k=len(members), fused_group=members[0][0].number)
        try:
            return train_fused(
                spec,
                cfgs,
                objective.splits,
                on_report=[objective.reporter(m[0]) for m in members],
                keep_models=keep,
                deadline=objective.deadline,
                speed=objective.speed,
            )
        except TimeUp as e:
            return [e] * len(members)
    trial, sp, cfg = members[0]
    try:
        return [
            train(
                sp,
                cfg,
                objective.splits,
                on_report=objective.reporter(trial),
                deadline=objective.deadline,
                keep_model=keep,
                speed=objective.speed,
                teacher=objective.teacher if cfg.distill else None,
            )
        ]
    except (Diverged, TimeUp, optuna.TrialPruned) as e:
        return [e]
