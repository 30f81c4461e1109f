"""The objective: sample a candidate, enforce the budget, train it, report to the pruner, and
record what happened on the trial (``records``)."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Callable

import optuna

from mnist_search.data.dataset import Splits
from mnist_search.net.spec import ArchSpec, count_params, describe
from mnist_search.search import records
from mnist_search.spaces import get_space
from mnist_search.stopping import StopToken
from mnist_search.training.loop import (
    PER_RUN,
    Diverged,
    Speed,
    TrainConfig,
    TrainResult,
    train,
)
from mnist_search.training.protocol import Protocol
from mnist_search.training.steps import TimeUp

log = logging.getLogger("mnist_search")
UNCAPPED = 10**9  # the budget of a study without one


# A net still near chance (10%) after this many training images is not learning; it is stopped
# at once, whatever the pruner, from the first trial on (the median pruner waits for five
# finished trials, and then judges only against them). The default protocol reports every 1/16
# epoch (3,437 images), so this is its third report.
DEAD_AFTER = 10_000
DEAD_BELOW = 15.0  # chance is 10%; the most common digit alone is 11.35%

# A budget in parameters does not bound compute: at 25,000 parameters the space holds nets 5×
# slower than their equals (wide blocks at full resolution). A candidate whose first epoch
# would take more than this share of the search's time is stopped once its speed is known (the
# same report as DEAD_AFTER), so one slow net cannot eat a short search: at 3 minutes a net's
# epoch may take 45 s, in the default run's 6-minute search 90 s. An eighth stopped nets that
# finished in 22 s (the projection from the first reports runs high) and lowered the 3-minute
# median. Time, not multiply-adds, so the rule follows the device. One epoch, not the whole
# training: a search of longer trials (``--epochs 9 --pruner sha``) judges its nets after their
# first epoch, and its whole trainings, each over a quarter of an 8-minute run's search, were
# all stopped, so that nothing finished and the final stage had no candidate.
SLOW_SHARE = 1 / 4


class Objective:
    """Validation accuracy (%) after the protocol's training.

    Split in three steps so that several trials can share one fused training (``parallel.py``):
    ``prepare`` samples the trial and enforces the budget, ``reporter`` feeds the pruner, and
    ``finish`` records a result. ``__call__`` runs them for one trial.

    ``deadline`` (a ``time.time()`` value) stops a trial still training when the search's time is
    up; it is recorded as pruned with that reason. ``progress`` receives a line per validation.
    A trial queued with a ``seed`` trains with that seed (seed replicas), one queued with
    ``fixed_spec`` and ``fixed_training`` trains that net with those settings instead of sampling
    (warm starts, final retrainings). With an ``artifact_store``, each completed trial's weights
    are stored there.
    """

    def __init__(
        self,
        budget: int | None,
        protocol: Protocol,
        splits: Splits,
        *,
        base_seed: int = 0,
        deadline: float | None = None,
        progress: Callable[[str], None] | None = None,
        artifact_store: Any = None,
        speed: Speed = Speed(),
        space: str = "modern",
        stop: StopToken | None = None,
        wanted: set[tuple[int, int]] | None = None,
        prune_dead: bool = False,
        search_seconds: float | None = None,
        teacher: Any = None,
    ):
        self.space = get_space(space)
        self.budget, self.protocol, self.splits = budget, protocol, splits
        self.cap = budget if budget is not None else UNCAPPED
        self.base_seed, self.deadline, self.progress = base_seed, deadline, progress
        self.artifact_store, self.speed = artifact_store, speed
        self.device = splits.train.images.device
        # The (source trial, seed) retrainings a final stage wants; a queued retraining of
        # another candidate (left from an earlier run) is pruned without training.
        self.wanted = wanted
        # A search stops candidates that do not learn (DEAD_BELOW); a replay or a final
        # retraining trains its fixed net to the end, whatever it reaches.
        self.prune_dead = prune_dead
        # A teacher's outputs for every training image, for the recipes that distil (``distill``).
        self.teacher = teacher
        # A search of this length stops candidates too slow for it (SLOW_SHARE); None: no limit.
        self.slow_after = None if search_seconds is None else SLOW_SHARE * search_seconds
        # Set by a signal (Ctrl-C, SIGTERM, SIGHUP): a KeyboardInterrupt that landed inside a
        # database call can be swallowed there, so the next report raises it again.
        self.stop = stop or StopToken()

    def prepare(self, trial: optuna.Trial) -> tuple[ArchSpec, TrainConfig]:
        records.write(trial, started=time.time())
        queued = records.TrialRecord.of(trial)
        if (
            self.wanted is not None
            and queued.source_trial is not None
            and (queued.source_trial, queued.seed) not in self.wanted
        ):
            records.write(trial, pruned_reason="no longer a finalist")
            self._seconds(trial)
            raise optuna.TrialPruned("no longer a finalist")
        if queued.is_fixed:
            spec = ArchSpec.from_dict(queued.fixed_spec)
            hp = {k: v for k, v in (queued.fixed_training or {}).items() if k not in PER_RUN}
        else:
            spec = self.space.suggest_spec(trial, self.cap)
            hp = self.space.suggest_training(trial)
        if spec.num_classes != self.splits.classes:
            # The spaces fit widths for 10 outputs: with more classes a net at the edge of the
            # budget goes over it below and is refused like any other.
            spec = dataclasses.replace(spec, num_classes=self.splits.classes)
        n = count_params(spec)
        # A fixed net may be queued with a length of its own (a final stage sized by time).
        epochs = queued.epochs if queued.is_fixed and queued.epochs else self.protocol.epochs
        records.write(
            trial,
            n_params=n,
            architecture=describe(spec),
            spec=spec.to_dict(),
            epochs=epochs,
            batch_size=hp["batch_size"],
            device=str(self.device),
            dataset=self.splits.dataset,
            speed=self.speed.resolve(self.device, epochs).to_dict(),
        )
        # Feasible when <= 0; TPE ranks infeasible trials below every feasible one.
        trial.set_constraint("budget", n - self.cap)
        if n > self.cap:
            records.write(
                trial, pruned_reason=f"{records.OVER_BUDGET}: {n:,} > {self.budget:,} parameters"
            )
            self._seconds(trial)
            raise optuna.TrialPruned(f"over budget ({n} > {self.budget})")
        seed = queued.seed if queued.seed is not None else self.base_seed + trial.number
        reports = self.protocol.reports_for(epochs)
        cfg = TrainConfig(epochs=epochs, reports_per_epoch=reports, seed=seed, **hp)
        records.write(trial, seed=seed, training=cfg.to_dict())
        return spec, cfg

    def reporter(self, trial: optuna.Trial) -> Callable[[int, float], None]:
        epochs = trial.user_attrs.get("epochs") or self.protocol.epochs
        reports = self.protocol.reports_for(epochs)
        total_steps = epochs * reports
        first: list[tuple[int, float]] = []  # (step, time) of the first report: the rate after it
        # skips the first batches' one-time costs (allocation, compilation)
        # A warm start is a known net the search starts from (the incumbent a final stage may
        # retrain): judged on accuracy like any other, never stopped for its time.
        slow_after = None if records.TrialRecord.of(trial).warm_start else self.slow_after

        def on_report(step: int, val: float) -> None:
            self.stop.check()
            now = time.time()
            trial.report(val, step)
            if not first:
                first.append((step, now))
            # A line per quarter epoch at most: 16 reports an epoch would flood a log file.
            if self.progress is not None and (step + 1) % max(1, reports // 4) == 0:
                self.progress(
                    f"  trial {trial.number}: {100 * (step + 1) // total_steps}% "
                    f"trained, val {val:.2f}%"
                )
            seen = (step + 1) * len(self.splits.train) // reports
            if self.prune_dead and seen >= DEAD_AFTER and val < DEAD_BELOW:
                records.write(
                    trial,
                    pruned_reason=f"dead at step {step}: val {val:.2f}% after {seen:,} images",
                )
                raise optuna.TrialPruned(f"dead: val {val:.2f}% after {seen:,} images")
            if slow_after is not None and seen >= DEAD_AFTER and step > first[0][0]:
                step0, t0 = first[0]
                epoch = (now - t0) / (step - step0) * reports
                if epoch > slow_after:
                    why = (
                        f"too slow: {epoch:.0f} s an epoch, more than {slow_after:.0f} s "
                        f"({SLOW_SHARE:.3g} of the search)"
                    )
                    records.write(trial, pruned_reason=f"{why} at step {step}")
                    raise optuna.TrialPruned(why)
            if trial.should_prune():
                records.write(trial, pruned_reason=f"pruned at step {step}: val {val:.2f}%")
                raise optuna.TrialPruned(f"val {val:.2f}% at step {step}")

        return on_report

    def _seconds(self, trial: optuna.Trial) -> None:
        records.write(trial, seconds=round(time.time() - trial.user_attrs["started"], 3))

    def finish(self, trial: optuna.Trial, outcome: TrainResult | BaseException) -> float:
        """Record a training's result on the trial, or turn its failure into a pruned trial."""
        self._seconds(trial)
        if isinstance(outcome, Diverged):
            records.write(trial, pruned_reason=f"diverged: {outcome}")
            raise optuna.TrialPruned(str(outcome))
        if isinstance(outcome, TimeUp):
            records.write(trial, pruned_reason=f"stopped: {outcome}")
            raise optuna.TrialPruned(str(outcome))
        if isinstance(outcome, BaseException):
            raise outcome
        records.write(
            trial,
            train_accuracy=outcome.train_accuracy,
            test_accuracy=outcome.test_accuracy,  # reports only, never selection
            train_seconds=round(outcome.train_seconds, 3),
            images_per_second=round(outcome.images_per_second, 1),
        )
        if self.artifact_store is not None and outcome.model is not None:
            from mnist_search.search.artifacts import save_weights

            try:
                records.write(
                    trial,
                    weights_artifact_id=save_weights(trial, outcome.model, self.artifact_store),
                )
            except OSError as e:  # a full disk must not cost the trained trial or the search
                log.warning(
                    "trial %d: weights not stored (%s); its result is kept", trial.number, e
                )
        return outcome.val_accuracy

    def __call__(self, trial: optuna.Trial) -> float:
        spec, cfg = self.prepare(trial)
        try:
            outcome: TrainResult | BaseException = train(
                spec,
                cfg,
                self.splits,
                on_report=self.reporter(trial),
                deadline=self.deadline,
                keep_model=self.artifact_store is not None,
                speed=self.speed,
                teacher=self.teacher if cfg.distill else None,
            )
        except (Diverged, TimeUp) as e:
            outcome = e
        except BaseException:
            self._seconds(trial)
            raise
        return self.finish(trial, outcome)
