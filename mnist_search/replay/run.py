"""Replay the write-up's six experiments as fixed trials, and check its findings against them.

A replayed experiment is an ordinary trial of an ordinary study (enqueued with fixed parameters),
so it shows in the dashboard beside searched ones and is trained by the same objective.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import optuna

from mnist_search.catalog.experiments import (
    DOCUMENTED_PROTOCOL,
    PROTOCOL_NAME,
    documented_experiments,
    get_experiment,
)
from mnist_search.data.mnist import load_mnist
from mnist_search.device import resolve_device
from mnist_search.errors import ConfigError, check_range
from mnist_search.files import check_writable
from mnist_search.replay.summary import Finding, ReplayRow, findings, summarize, to_json
from mnist_search.search import records, storage
from mnist_search.search.objective import Objective
from mnist_search.search.progress import TrialLog, step_line
from mnist_search.search.records import TrialRecord
from mnist_search.search.runner import run_trials
from mnist_search.search.study import open_study
from mnist_search.search.warmstart import documented_attrs, documented_params
from mnist_search.training.protocol import Protocol
from mnist_search.training.settings import RunSettings

log = logging.getLogger("mnist_search")


def _key(r: TrialRecord) -> tuple[Any, Any]:
    return r.experiment, r.seed


def enqueue_replay(study: optuna.Study, exp_ids: Iterable[int], seeds: int) -> tuple[int, int]:
    """Queue the (experiment, seed) runs not yet done or queued. Returns (queued, already done)."""
    exps = [get_experiment(e) for e in exp_ids]
    runs = (
        ((exp.id, seed), documented_params(exp), documented_attrs(exp, seed))
        for exp in exps
        for seed in range(seeds)
    )
    return records.queue_missing(study, runs, _key)


# --- running a replay ----------------------------------------------------------------------------


def experiment_ids(value: str | Iterable[int]) -> list[int]:
    """Sorted distinct experiment ids from "1,3,6" or an iterable of ints; ConfigError if any is
    not a documented experiment."""
    valid = [e.id for e in documented_experiments()]
    text = value if isinstance(value, str) else ",".join(map(str, value))
    try:
        ids = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        ids = []
    if not ids or any(i not in valid for i in ids):
        raise ConfigError(
            "experiments", f"{text!r}: give ids from {', '.join(map(str, valid))}, comma-separated"
        )
    return ids


@dataclass(frozen=True)
class ReplayConfig:
    experiments: str | tuple[int, ...] = (1, 2, 3, 4, 5, 6)  # ids, or "1,3,6"
    seeds: int = 3  # runs per experiment, seeds 0..seeds-1
    protocol: Protocol = Protocol()  # the data split and length (the recipe is the write-up's)
    study_name: str = "documented-experiments"
    storage: str | None = None  # default sqlite:///studies/mnist-search.db (all studies)
    run: RunSettings = RunSettings()  # device, data, speed, fused group size
    artifacts: str | Path | None = None

    def check(self) -> None:
        experiment_ids(self.experiments)
        check_range("seeds", self.seeds)
        self.run.check()
        storage.check_study_name(self.study_name)


@dataclass
class ReplayOutcome:
    rows: list[ReplayRow]
    findings: list[Finding]
    protocol: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return to_json(self.rows, self.findings, self.protocol)


def run_replay(config: ReplayConfig) -> ReplayOutcome:
    """Train what is missing of the (experiment, seed) runs; summarise all that are done."""
    from mnist_search.search.artifacts import DEFAULT_ARTIFACTS, artifact_store

    config.check()
    protocol, run = config.protocol, config.run
    check_writable("artifacts", config.artifacts or DEFAULT_ARTIFACTS, folder=True)
    dev = resolve_device(run.device)
    url = config.storage or storage.default_storage()
    storage.check(url, default=config.storage is None)
    splits = protocol.splits(load_mnist(run.data_dir), dev)
    storage.prepare(url)
    study = open_study(
        storage.open_storage(url), config.study_name, None, protocol, pruner="none", space="plain"
    )
    ids = experiment_ids(config.experiments)
    if protocol.train_subset is not None:
        log.warning(
            "warning: --train-subset %d: the findings are judged on nets trained on %s of "
            "the 55,000 training images, not under the write-up's conditions",
            protocol.train_subset,
            f"{protocol.train_subset:,}",
        )
    if config.seeds == 1:
        log.warning(
            "warning: one seed per experiment: the findings compare single runs, with no "
            "spread to tell a real difference from noise (--seeds 3 or more)"
        )
    queued, done = enqueue_replay(study, ids, config.seeds)
    log.info(
        "replay in %s: %d run(s) to train, %d already done; protocol %s: %s, %d epoch(s)",
        storage.masked(url),
        queued,
        done,
        PROTOCOL_NAME,
        DOCUMENTED_PROTOCOL,
        protocol.epochs,
    )
    if queued:
        objective = Objective(
            None,
            protocol,
            splits,
            progress=step_line,
            artifact_store=artifact_store(config.artifacts),
            speed=run.speed,
            space="plain",
        )
        try:
            run_trials(study, objective, run.parallel, n_trials=queued, callbacks=[TrialLog()])
        except KeyboardInterrupt:
            log.info("interrupted: finished runs are kept; run again to train the rest")
    rows = summarize(study, ids)
    return ReplayOutcome(
        rows,
        findings(rows),
        {
            "name": PROTOCOL_NAME,
            "epochs": protocol.epochs,
            "batch_size": "per experiment",
            **DOCUMENTED_PROTOCOL,
        },
    )
