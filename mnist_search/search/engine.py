"""The search engine: one frozen config in, one outcome out.

``run_search`` checks the whole config before any work, loads and verifies the data, creates the
study once, queues warm starts, searches in this process or in worker processes (each started
from the serialized config and its rank, ``worker.py``), then runs the final stage.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import optuna
import torch

from mnist_search.data.dataset import Splits
from mnist_search.device import resolve_device
from mnist_search.files import check_writable
from mnist_search.search import storage
from mnist_search.search.artifacts import DEFAULT_ARTIFACTS, artifact_store
from mnist_search.search.config import SEARCH_SHARE, Resolved, SearchConfig
from mnist_search.search.final import FinalOutcome, FinalStage
from mnist_search.search.final_time import LeaveTimeForFinal
from mnist_search.search.objective import Objective
from mnist_search.search.progress import TrialLog, step_line
from mnist_search.search.records import Tally, TrialRecord, tally, top_trials
from mnist_search.search.runner import run_trials
from mnist_search.search.study import open_study
from mnist_search.search.warmstart import queue_startup, warm_start
from mnist_search.search.workers import run_workers, worker_device
from mnist_search.spaces import get_space
from mnist_search.stopping import Deadline, StopToken, stop_on_signals
from mnist_search.training.warmup import warm_up

log = logging.getLogger("mnist_search")


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
    # From here the config names the data as read: an own folder by its fingerprint, so a study
    # made on one folder is never resumed on another.
    cfg = dataclasses.replace(cfg, protocol=cfg.protocol.on(splits.dataset))
    study = _open(cfg)
    final = FinalStage(cfg, study) if cfg.final.seeds else None  # a mismatch stops us here
    length = None if cfg.auto_final else cfg.final_protocol.epochs  # what the chosen net trains
    for line in warm_start(
        cfg.warm_start,
        study,
        cfg.budget,
        cfg.space,
        tuple(cfg.warm_dirs),
        length,
        dataset=cfg.protocol.dataset,
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
            splits = cfg.protocol.splits(cfg.protocol.load(cfg.run.data_dir), dev)
        out.final = final.run(splits, out.deadline)
    return out


def run_worker(config: Resolved, rank: int) -> None:
    """One worker process of a search: the study exists already; search until the limits."""
    dev = worker_device(config.run.device, resolve_device(config.run.device), rank)
    splits = config.protocol.splits(config.protocol.load(config.run.data_dir), dev)
    _search(config, _open(config), splits, dev, Deadline.after(config.timeout), reserve=False)


def _check_and_load(cfg: Resolved, default_storage: bool) -> tuple[torch.device, Splits]:
    """Every check that writes nothing, then the verified data; only then the studies folder."""
    cfg.check()
    check_writable("artifacts", cfg.artifacts or DEFAULT_ARTIFACTS, folder=True)
    if cfg.final.seeds:
        check_writable("best_spec", cfg.best_spec, folder=False)
    dev = resolve_device(cfg.run.device)
    storage.check(cfg.storage, default=default_storage)
    splits = cfg.protocol.splits(cfg.protocol.load(cfg.run.data_dir), dev)  # verified first
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
        search_seconds=deadline.left(),
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
                incumbent=cfg.final.incumbent,
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
