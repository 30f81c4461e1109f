"""The search engine: one frozen config in, one outcome out.

``run_search`` checks the whole config before any work, loads and verifies the data, creates the
study once, queues warm starts, runs the search in this process or in worker processes (each
started from the serialized config and its rank, ``worker.py``), then the final stage.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch

from mnist_search.data.mnist import Splits, load_mnist
from mnist_search.device import resolve_device
from mnist_search.errors import ConfigError, check_seed
from mnist_search.files import check_writable
from mnist_search.net.spec import describe
from mnist_search.outputs.artifacts import DEFAULT_ARTIFACTS, artifact_store
from mnist_search.progress import TrialLog, step_line
from mnist_search.search import storage
from mnist_search.search.final import (
    FinalOutcome,
    LeaveTimeForFinal,
    final_lengths,
    final_study_name,
    run_final,
)
from mnist_search.search.objective import Objective
from mnist_search.search.records import Tally, TrialRecord, tally, top_trials
from mnist_search.search.runner import run_trials
from mnist_search.search.study import PRUNERS, open_study
from mnist_search.search.warmstart import warm_start_known
from mnist_search.search.workers import run_workers, worker_device
from mnist_search.spaces import SPACES, get_space
from mnist_search.stopping import stop_on_signals
from mnist_search.training.loop import Speed
from mnist_search.training.protocol import MAX_EPOCHS, Protocol
from mnist_search.training.warmup import warm_up

log = logging.getLogger("mnist_search")
DEFAULT_TIMEOUT = 900.0  # seconds, when neither a trial count nor a time limit is given
AUTO = "auto"
# With an automatic final length, the search gets this share of the time limit and the final
# stage the rest: one short trial tells too little about a net to spend more of it searching.
SEARCH_SHARE = 0.4
MAX_WORKERS = 64  # a typo such as --workers 1000 must not start a thousand processes
WARM_STARTS = ("found", "documented", "none")


@dataclass(frozen=True)
class SearchConfig:
    """Everything one search needs. Paths may be ``str`` or ``Path``; None means the default."""

    budget: int = 25000  # hard cap on trainable parameters
    space: str = "modern"
    # The protocol: how each candidate is trained and judged.
    epochs: int = 1
    train_subset: int | None = None
    val_size: int = 5000
    # Stopping: after n_trials (per process), or timeout seconds (default 900 without n_trials).
    n_trials: int | None = None
    timeout: float | None = None
    study_name: str | None = None  # default budget-<budget>; the same name resumes
    storage: str | None = None  # default sqlite:///studies/mnist-search.db (all studies)
    seed: int | None = None  # None: drawn at random (and recorded in the outcome's config)
    device: str = "auto"
    data_dir: str | Path | None = None
    pruner: str = "median"
    # First trials: "found" (shipped nets fitted to the budget), "documented" or "none".
    warm_start: str = "found"
    workers: int = 1
    heartbeat: int = 10
    parallel: int = 1
    amp: bool | None = None
    channels_last: bool | None = None
    compile: bool = False
    artifacts: str | Path | None = None
    # The final stage: retrain the top candidates with several seeds (0: none).
    final_seeds: int = 1
    # "auto": as many as the time left allows (with a timeout; else epochs); None: epochs.
    final_epochs: int | str | None = "auto"
    final_top: int = 2
    best_spec: str | Path | None = None  # default studies/<study_name>-best.json

    @property
    def protocol(self) -> Protocol:
        return Protocol(epochs=self.epochs, train_subset=self.train_subset, val_size=self.val_size)

    @property
    def auto_final(self) -> bool:
        """The final length is set by the time the search leaves (``final_epochs="auto"``)."""
        return bool(self.final_seeds) and self.final_epochs == AUTO and self.timeout is not None

    @property
    def final_protocol(self) -> Protocol:
        """The final stage's protocol; with an automatic length, its --epochs until the search
        has measured its finalists (``final_length``)."""
        fixed = self.final_epochs if isinstance(self.final_epochs, int) else None
        return dataclasses.replace(self.protocol, epochs=fixed or self.epochs)

    @property
    def speed(self) -> Speed:
        return Speed(self.amp, self.channels_last, None, self.compile)

    def check(self) -> None:
        """Raise ConfigError for the first bad setting; touches nothing."""
        if self.space not in SPACES:
            raise ConfigError("space", f"{self.space!r}; valid: {', '.join(SPACES)}")
        sp = get_space(self.space)
        if self.budget <= 0:
            raise ConfigError("budget", f"{self.budget}: must be a positive number of parameters")
        if self.budget < sp.smallest_params():
            raise ConfigError(
                "budget",
                f"{self.budget:,} is below the smallest net in the "
                f"{self.space} search space ({sp.smallest_params():,} parameters: "
                f"{describe(sp.smallest_net())})",
            )
        if self.final_epochs not in (None, AUTO) and (
            isinstance(self.final_epochs, bool)
            or not isinstance(self.final_epochs, int)
            or not 1 <= self.final_epochs <= MAX_EPOCHS
        ):
            raise ConfigError(
                "final_epochs",
                f"{self.final_epochs!r}: must be 'auto' or a "
                f"number of epochs from 1 to {MAX_EPOCHS}",
            )
        self.protocol  # noqa: B018 -- a Protocol checks epochs, val_size and train_subset
        if self.n_trials is not None and self.n_trials < 1:
            raise ConfigError("n_trials", f"{self.n_trials}: must be at least 1")
        if self.timeout is not None and not 0 < self.timeout < math.inf:
            raise ConfigError(
                "timeout", f"{self.timeout}: must be a positive, finite number of seconds"
            )
        if self.pruner not in PRUNERS:
            raise ConfigError("pruner", f"{self.pruner!r}; valid: {', '.join(PRUNERS)}")
        if self.warm_start not in WARM_STARTS:
            raise ConfigError("warm_start", f"{self.warm_start!r}; valid: {', '.join(WARM_STARTS)}")
        for name, low, high, unit in (
            ("workers", 1, MAX_WORKERS, ""),
            ("heartbeat", 1, 3600, " second"),
            ("parallel", 1, 256, ""),
            ("final_top", 1, 100, ""),
            ("final_seeds", 0, 100, ""),
        ):
            value = getattr(self, name)
            if value < low:
                raise ConfigError(name, f"{value}: must be at least {low}{unit}")
            if value > high:
                raise ConfigError(name, f"{value}: must be at most {high}")
        if self.compile and self.parallel > 1:
            raise ConfigError(
                "compile",
                "True with parallel={}: fused training of several "
                "candidates does not compile; drop one of the two".format(self.parallel),
            )
        check_seed("seed", self.seed)
        if self.study_name is not None:
            storage.check_study_name(self.study_name)

    def resolved(self) -> SearchConfig:
        """The config with every default filled in (the seed drawn once, here)."""
        name = self.study_name or f"budget-{self.budget}"
        return dataclasses.replace(
            self,
            study_name=name,
            storage=self.storage or storage.default_storage(),
            seed=self.seed if self.seed is not None else random.SystemRandom().randrange(2**31),
            timeout=(
                DEFAULT_TIMEOUT if self.timeout is None and self.n_trials is None else self.timeout
            ),
            best_spec=str(self.best_spec or storage.STUDIES / f"{name}-best.json"),
        )

    def to_json(self) -> str:
        return json.dumps(
            {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()}
        )


@dataclass
class SearchOutcome:
    config: SearchConfig  # as run: every default filled in
    study: optuna.Study
    final: FinalOutcome | None = None
    interrupted: bool = False  # stopped by Ctrl-C; running the same search again resumes it
    stopped_for_final: float | None = None  # seconds left when the search made room for it
    deadline: float | None = None  # time.time() when both stages should be done
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
    cfg.check()
    check_writable("artifacts", cfg.artifacts or DEFAULT_ARTIFACTS, folder=True)
    if cfg.final_seeds:
        check_writable("best_spec", cfg.best_spec, folder=False)
    dev = resolve_device(cfg.device)
    storage.check(cfg.storage, default=config.storage is None)
    splits = cfg.protocol.splits(load_mnist(cfg.data_dir), dev)  # verified before any write
    storage.prepare(cfg.storage)
    # The study is created here, once, before any worker starts: workers that each created a
    # fresh SQLite study at the same moment would collide.
    study = _open(cfg)
    before = tally(study.get_trials(deepcopy=False))
    if before.complete + before.pruned + before.failed:
        log.info(
            "resuming study %r: it holds %d complete, %d pruned and %d failed trials",
            cfg.study_name,
            before.complete,
            before.pruned,
            before.failed,
        )
    final = None
    if cfg.final_seeds and not cfg.auto_final:
        # Opened now so that a mismatch with an earlier final stage stops the run before the
        # search, not after it.
        final = open_study(
            storage.open_storage(cfg.storage, heartbeat=cfg.heartbeat),
            final_study_name(cfg.study_name),
            cfg.budget,
            cfg.final_protocol,
            seed=cfg.seed,
            pruner="none",
            space=cfg.space,
        )
    if cfg.warm_start == "documented":
        from mnist_search.replay.run import warm_start

        for line in warm_start(study, cfg.budget, cfg.space):
            log.info(line)
    elif cfg.warm_start == "found":
        for line in warm_start_known(study, cfg.budget, cfg.space):
            log.info(line)
    out = SearchOutcome(cfg, study)
    if cfg.timeout is not None:
        out.deadline = time.time() + cfg.timeout
    searching = (
        dataclasses.replace(cfg, timeout=cfg.timeout * SEARCH_SHARE) if cfg.auto_final else cfg
    )
    if cfg.auto_final:
        log.info(
            "of the %.0f s limit, the search gets %.0f s and the final stage the rest",
            cfg.timeout,
            searching.timeout,
        )
    if cfg.workers > 1:
        splits = None  # each worker loads its own copy on its own device
        log.info(
            "study %r in %s: starting %d workers",
            cfg.study_name,
            storage.masked(cfg.storage),
            cfg.workers,
        )
        try:
            out.worker_exit_codes = run_workers(
                searching.to_json(), cfg.workers, cpu=dev.type == "cpu"
            )
        except KeyboardInterrupt:
            log.info("interrupted: the workers marked their running trials; run again to resume")
            out.interrupted = True
        if not out.ok:
            return out
    else:
        out.interrupted, out.stopped_for_final = _search(
            searching, study, splits, dev, with_final=final is not None
        )
    if cfg.final_seeds and not out.interrupted:
        if splits is None:
            splits = cfg.protocol.splits(load_mnist(cfg.data_dir), dev)
        lengths = None
        if cfg.auto_final:
            left = out.deadline - time.time()
            lengths = final_lengths(study, cfg.final_top, cfg.final_seeds, cfg.epochs, left)
            log.info("final stage: %.0f s left, shared equally by its retrainings", left)
            final = open_study(
                storage.open_storage(cfg.storage, heartbeat=cfg.heartbeat),
                final_study_name(cfg.study_name, auto=True),
                cfg.budget,
                cfg.protocol,
                seed=cfg.seed,
                pruner="none",
                space=cfg.space,
            )
        out.final = _final_stage(cfg, study, final, splits, lengths)
    return out


def run_worker(config: SearchConfig, rank: int) -> None:
    """One worker process of a search: the study exists already; search until the limits."""
    dev = worker_device(config.device, resolve_device(config.device), rank)
    splits = config.protocol.splits(load_mnist(config.data_dir), dev)
    study = _open(config)
    _search(config, study, splits, dev, with_final=False)


def _open(cfg: SearchConfig) -> optuna.Study:
    # Heartbeats come from study.optimize; --parallel runs ask-and-tell, which has none.
    beat = cfg.heartbeat if cfg.parallel == 1 else None
    return open_study(
        storage.open_storage(cfg.storage, heartbeat=beat),
        cfg.study_name,
        cfg.budget,
        cfg.protocol,
        seed=cfg.seed,
        pruner=cfg.pruner,
        space=cfg.space,
    )


def _search(
    cfg: SearchConfig, study: optuna.Study, splits: Splits, dev: torch.device, with_final: bool
) -> tuple[bool, float | None]:
    """Search in this process until its limits. Returns (interrupted, seconds left when it
    stopped to leave time for the final stage)."""
    limits = " and ".join(
        x
        for x in (
            f"{cfg.n_trials} trials" if cfg.n_trials else "",
            f"{cfg.timeout:.0f} s" if cfg.timeout else "",
        )
        if x
    )
    log.info(
        "study %r in %s: budget %s parameters, %d epoch(s) on %s train / %s val images, "
        "device %s, seed %d; stopping after %s",
        cfg.study_name,
        storage.masked(cfg.storage),
        f"{cfg.budget:,}",
        cfg.epochs,
        f"{len(splits.train):,}",
        f"{len(splits.val):,}",
        dev,
        cfg.seed,
        limits,
    )
    deadline = time.time() + cfg.timeout if cfg.timeout else None
    seconds = warm_up(get_space(cfg.space).smallest_net(), splits, cfg.speed, cfg.parallel)
    log.info(
        "warm-up on %s: %.1f s, paid once by this process rather than by its first trial",
        dev,
        seconds,
    )
    objective = Objective(
        cfg.budget,
        cfg.protocol,
        splits,
        base_seed=cfg.seed,
        deadline=deadline,
        progress=step_line,
        artifact_store=artifact_store(cfg.artifacts),
        speed=cfg.speed,
        space=cfg.space,
    )
    callbacks: list[Any] = [TrialLog(cfg.n_trials, deadline)]
    reserve = None
    if with_final and deadline is not None:
        reserve = LeaveTimeForFinal(
            deadline, cfg.final_top, cfg.final_seeds, cfg.epochs, cfg.final_epochs or cfg.epochs
        )
        callbacks.append(reserve)
    interrupted = False
    with stop_on_signals(objective.stop):
        try:
            # The time left, not cfg.timeout: the warm-up has used some, and a loop given more
            # than the trials' deadline would start trials that stop at their first batch.
            left = max(0.0, deadline - time.time()) if deadline is not None else None
            run_trials(
                study,
                objective,
                cfg.parallel,
                n_trials=cfg.n_trials,
                timeout=left,
                callbacks=callbacks,
                stop=lambda: reserve is not None and reserve.stopped_with is not None,
            )
        except KeyboardInterrupt:
            log.info("interrupted: the running trial is marked failed; run again to resume")
            interrupted = True
    stopped = reserve.stopped_with if reserve is not None else None
    if stopped is not None:
        log.info(
            "search stopped with %.0f s left: about what the final stage needs (estimated "
            "from the top candidates' trial times)",
            stopped,
        )
    return interrupted, stopped


def _final_stage(
    cfg: SearchConfig,
    study: optuna.Study,
    final: optuna.Study,
    splits: Splits,
    lengths: dict[int, int] | None = None,
) -> FinalOutcome:
    objective = Objective(
        cfg.budget,
        cfg.final_protocol,
        splits,
        progress=step_line,
        artifact_store=artifact_store(cfg.artifacts),
        speed=cfg.speed,
        space=cfg.space,
    )
    return run_final(
        study,
        final,
        objective,
        top=cfg.final_top,
        seeds=cfg.final_seeds,
        epochs=lengths or cfg.final_protocol.epochs,
        best_spec=Path(cfg.best_spec),
        meta={
            "budget": cfg.budget,
            "space": cfg.space,
            "study": cfg.study_name,
            "storage": storage.masked(cfg.storage),
            "protocol": cfg.protocol.data_split(),
        },
        callbacks=[TrialLog()],
    )
