"""The search engine: one frozen config in, one outcome out.

``run_search`` checks the whole config before any work, loads and verifies the data, creates the
study once, queues warm starts, searches in this process or in worker processes (each started
from the serialized config and its rank, ``worker.py``), then runs the final stage.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import torch

from mnist_search.data.mnist import Splits, load_mnist
from mnist_search.device import resolve_device
from mnist_search.files import check_writable
from mnist_search.outputs.artifacts import DEFAULT_ARTIFACTS, artifact_store
from mnist_search.progress import TrialLog, step_line
from mnist_search.search import records, storage
from mnist_search.search.config import SEARCH_SHARE, Resolved, SearchConfig
from mnist_search.search.final import FinalOutcome, final_study_name, run_final
from mnist_search.search.final_time import LeaveTimeForFinal, epoch_seconds, final_lengths
from mnist_search.search.objective import Objective
from mnist_search.search.records import Tally, TrialRecord, tally, top_trials
from mnist_search.search.runner import run_trials
from mnist_search.search.study import open_study
from mnist_search.search.warmstart import queue_startup, warm_start
from mnist_search.search.workers import run_workers, worker_device
from mnist_search.spaces import get_space
from mnist_search.stopping import Deadline, StopToken, stop_on_signals
from mnist_search.training.warmup import warm_up

log = logging.getLogger("mnist_search")
# Before the final stage has timed a run of its own, what its first run keeps in reserve.
FIRST_RUN_MARGIN = 1.2


@dataclass
class SearchOutcome:
    config: Resolved  # as run: every default filled in
    study: optuna.Study
    deadline: Deadline = Deadline()  # when both stages should be done
    final: FinalOutcome | None = None
    interrupted: bool = False  # stopped by a signal; running the same search again resumes it
    stopped_for_final: float | None = None  # seconds left when the search made room for it
    worker_exit_codes: list[int] = field(default_factory=list)

    @property
    def best(self) -> TrialRecord | None:
        """The search's best trial by validation accuracy (fewest parameters on ties)."""
        best = top_trials(self.study, 1)
        return best[0] if best else None

    def top(self, k: int = 10) -> list[TrialRecord]:
        return top_trials(self.study, k)

    @property
    def tally(self) -> Tally:
        return tally(self.study.get_trials(deepcopy=False))

    @property
    def ok(self) -> bool:
        return not any(self.worker_exit_codes)


def run_search(config: SearchConfig) -> SearchOutcome:
    """Run one search as configured, and its final stage when asked. Raises a UsageError (with
    nothing written) for a bad config, storage or data folder."""
    cfg = config.resolved()
    dev, splits = _check_and_load(cfg, default_storage=config.storage is None)
    study = _open(cfg)
    final = FinalStage(cfg, study) if cfg.final.seeds else None  # a mismatch stops us here
    length = None if cfg.auto_final else cfg.final_protocol.epochs  # what the chosen net trains
    for line in warm_start(
        cfg.warm_start, study, cfg.budget, cfg.space, tuple(cfg.warm_dirs), length
    ) + queue_startup(study, cfg.budget, cfg.space, cfg.startup, cfg.seed):
        log.info(line)
    out = SearchOutcome(cfg, study, deadline=Deadline.after(cfg.timeout))
    searching = out.deadline.part(SEARCH_SHARE) if cfg.auto_final else out.deadline
    if cfg.auto_final:
        log.info(
            "of the %.0f s limit, the search gets %.0f s and the final stage the rest",
            cfg.timeout,
            searching.left(),
        )
    if cfg.workers > 1:
        del splits  # each worker loads its own copy on its own device, and so does the final stage
        out.interrupted = _run_workers(cfg, searching, dev, out)
        if not out.ok:
            return out
    else:
        reserve = final is not None and not cfg.auto_final
        out.interrupted, out.stopped_for_final = _search(
            cfg, study, splits, dev, searching, reserve
        )
    if final is not None and not out.interrupted:
        if cfg.workers > 1:
            splits = cfg.protocol.splits(load_mnist(cfg.run.data_dir), dev)
        out.final = final.run(splits, out.deadline)
    return out


def run_worker(config: Resolved, rank: int) -> None:
    """One worker process of a search: the study exists already; search until the limits."""
    dev = worker_device(config.run.device, resolve_device(config.run.device), rank)
    splits = config.protocol.splits(load_mnist(config.run.data_dir), dev)
    _search(config, _open(config), splits, dev, Deadline.after(config.timeout), reserve=False)


def _check_and_load(cfg: Resolved, default_storage: bool) -> tuple[torch.device, Splits]:
    """Every check that writes nothing, then the verified data; only then the studies folder."""
    cfg.check()
    check_writable("artifacts", cfg.artifacts or DEFAULT_ARTIFACTS, folder=True)
    if cfg.final.seeds:
        check_writable("best_spec", cfg.best_spec, folder=False)
    dev = resolve_device(cfg.run.device)
    storage.check(cfg.storage, default=default_storage)
    splits = cfg.protocol.splits(load_mnist(cfg.run.data_dir), dev)  # verified before any write
    storage.prepare(cfg.storage)
    return dev, splits


def _open(cfg: Resolved) -> optuna.Study:
    """The search's study, created here once, before any worker starts (workers that each
    created a fresh SQLite study at the same moment would collide)."""
    # Heartbeats come from study.optimize; --parallel runs ask-and-tell, which has none.
    beat = cfg.heartbeat if cfg.run.parallel == 1 else None
    if beat is None and cfg.heartbeat:
        log.info(
            "--parallel %d: fused groups run without heartbeats (a killed run's trials are "
            "failed when it is started again)",
            cfg.run.parallel,
        )
    study = open_study(
        storage.open_storage(cfg.storage, heartbeat=beat),
        cfg.study_name,
        cfg.budget,
        cfg.protocol,
        seed=cfg.seed,
        pruner=cfg.pruner,
        space=cfg.space,
        startup=cfg.startup if get_space(cfg.space).startup else 0,
    )
    before = tally(study.get_trials(deepcopy=False))
    if before.complete + before.pruned + before.failed:
        log.info(
            "resuming study %r: it holds %d complete, %d pruned and %d failed trials",
            cfg.study_name,
            before.complete,
            before.pruned,
            before.failed,
        )
    return study


def _run_workers(cfg: Resolved, searching: Deadline, dev: torch.device, out: SearchOutcome) -> bool:
    """Search in worker processes; True when a signal stopped them."""
    log.info(
        "study %r in %s: starting %d workers",
        cfg.study_name,
        storage.masked(cfg.storage),
        cfg.workers,
    )
    job = dataclasses.replace(cfg, timeout=searching.left())
    try:
        out.worker_exit_codes = run_workers(job.to_json(), cfg.workers, cpu=dev.type == "cpu")
    except KeyboardInterrupt:
        log.info("interrupted: the workers marked their running trials; run again to resume")
        return True
    return False


def _search(
    cfg: Resolved,
    study: optuna.Study,
    splits: Splits,
    dev: torch.device,
    deadline: Deadline,
    reserve: bool,
) -> tuple[bool, float | None]:
    """Search in this process until its limits. With ``reserve``, stop early enough for a final
    stage of fixed length. Returns (interrupted, seconds left when it made room for the final
    stage)."""
    limits = " and ".join(
        x
        for x in (
            f"{cfg.n_trials} trials" if cfg.n_trials else "",
            f"{deadline.left():.0f} s" if deadline.at else "",
        )
        if x
    )
    log.info(
        "study %r in %s: budget %s parameters, %d epoch(s) on %s train / %s val images, "
        "device %s, seed %d; stopping after %s",
        cfg.study_name,
        storage.masked(cfg.storage),
        f"{cfg.budget:,}",
        cfg.protocol.epochs,
        f"{len(splits.train):,}",
        f"{len(splits.val):,}",
        dev,
        cfg.seed,
        limits,
    )
    seconds = warm_up(get_space(cfg.space).smallest_net(), splits, cfg.speed, cfg.run.parallel)
    log.info(
        "warm-up on %s: %.1f s, paid once by this process rather than by its first trial",
        dev,
        seconds,
    )
    stop = StopToken()
    objective = Objective(
        cfg.budget,
        cfg.protocol,
        splits,
        base_seed=cfg.seed,
        deadline=deadline.at,
        progress=step_line,
        artifact_store=artifact_store(cfg.artifacts),
        speed=cfg.speed,
        space=cfg.space,
        stop=stop,
        prune_dead=True,
    )
    callbacks: list = [TrialLog(cfg.n_trials, deadline.at)]
    if reserve and deadline.at is not None:
        callbacks.append(
            LeaveTimeForFinal(
                deadline,
                cfg.final.top,
                cfg.final.seeds,
                cfg.protocol.epochs,
                cfg.final.epochs if isinstance(cfg.final.epochs, int) else cfg.protocol.epochs,
                stop=stop,
                with_start=cfg.final.incumbent,
            )
        )
    interrupted = False
    with stop_on_signals(stop):
        try:
            # The time left, not cfg.timeout: the warm-up has used some, and a loop given more
            # than the trials' deadline would start trials that stop at their first batch.
            run_trials(
                study,
                objective,
                cfg.run.parallel,
                n_trials=cfg.n_trials,
                timeout=deadline.left(),
                callbacks=callbacks,
                stop=stop,
            )
        except KeyboardInterrupt:
            log.info("interrupted: the running trial is marked failed; run again to resume")
            interrupted = True
    if stop.room_left is not None:
        log.info(
            "search stopped with %.0f s left: about what the final stage needs (estimated "
            "from the top candidates' trial times)",
            stop.room_left,
        )
    return interrupted, stop.room_left


class FinalStage:
    """The second stage, opened once before the search (so a study left by a different final
    stage stops the run before any training); ``run`` plans its lengths from the time left and
    runs the plan."""

    def __init__(self, cfg: Resolved, study: optuna.Study) -> None:
        self.cfg, self.search = cfg, study
        # With lengths set by the time left, each retraining records its own length; the study
        # then keeps the search's protocol, and a study of its own name keeps the two apart.
        self.auto = cfg.auto_final
        self.study = open_study(
            storage.open_storage(cfg.storage, heartbeat=cfg.heartbeat),
            final_study_name(cfg.study_name, auto=self.auto, augment=cfg.final.augment_override),
            cfg.budget,
            cfg.protocol if self.auto else cfg.final_protocol,
            seed=cfg.seed,
            pruner="none",
            space=cfg.space,
        )

    def plan(self, deadline: Deadline) -> dict[int, int] | None:
        """Epochs per finalist when the time left decides them; None: the fixed length."""
        if not self.auto:
            return None
        left = deadline.left() or 0.0
        log.info("final stage: %.0f s left; finalists chosen for an equal share each", left)
        return final_lengths(
            self.search,
            self.cfg.final.top,
            self.cfg.final.seeds,
            self.cfg.protocol.epochs,
            left,
            max_epochs=self.cfg.final.max_epochs,
            with_start=self.cfg.final.incumbent,
        )

    def run(self, splits: Splits, deadline: Deadline) -> FinalOutcome:
        cfg, lengths = self.cfg, self.plan(deadline)

        def objective(wanted: set[tuple[int, int]]) -> Objective:
            return Objective(
                cfg.budget,
                cfg.final_protocol,
                splits,
                progress=step_line,
                artifact_store=artifact_store(cfg.artifacts),
                speed=cfg.speed,
                space=cfg.space,
                wanted=wanted,
            )

        return run_final(
            self.search,
            self.study,
            objective,
            top=cfg.final.top,
            seeds=cfg.final.seeds,
            epochs=lengths or cfg.final_protocol.epochs,
            best_spec=Path(cfg.best_spec),
            meta=cfg.spec_meta(),
            callbacks=[TrialLog()],
            replan=self._replan(deadline) if self.auto else None,
            augment=cfg.final.augment_override,
            incumbent=cfg.final.incumbent,
        )

    def _replan(self, deadline: Deadline) -> Callable[[TrialRecord, int], int]:
        """Each candidate's length, set as it starts: the time left shared by the runs left, at
        its per-epoch time from its search trial, scaled by how the runs this stage already
        finished compared with their own search trials, so the stage ends close to the deadline
        instead of a blanket margin early."""
        cfg = self.cfg
        trials = {t.number: TrialRecord.of(t) for t in self.search.get_trials(deepcopy=False)}

        def per_epoch(r: TrialRecord) -> float:
            return epoch_seconds(r, r.epochs or cfg.protocol.epochs)

        def replan(src: TrialRecord, runs_left: int) -> int:
            ratios = [
                per_epoch(r) / per_epoch(trials[r.source_trial])
                for r in records.complete(self.study)
                if r.source_trial in trials
                and per_epoch(r) > 0
                and per_epoch(trials[r.source_trial]) > 0
            ]
            seconds = per_epoch(src) * (statistics.median(ratios) if ratios else 1.0)
            left = deadline.left() or 0.0
            share = left / max(1, runs_left) / seconds if seconds > 0 else 0.0
            # Once this stage's own runs have measured the speed, the length nearest the share
            # (the stage ends within half an epoch of the limit, either side); before, the
            # first run leaves a margin that the later ones then spend.
            epochs = round(share) if ratios else int(share / FIRST_RUN_MARGIN)
            epochs = (
                max(1, min(cfg.final.max_epochs, epochs)) if seconds > 0 else cfg.protocol.epochs
            )
            log.info(
                "final stage: trial %d gets %d epoch(s): %.0f s left for %d run(s), %.1f s "
                "per epoch expected%s",
                src.number,
                epochs,
                left,
                runs_left,
                seconds,
                f" (measured on {len(ratios)} finished run(s))" if ratios else "",
            )
            return epochs

        return replan
