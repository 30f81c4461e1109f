"""The second stage of a search: retrain its best candidates from scratch at full length with
several seeds, choose on mean validation accuracy, and report test accuracy as mean ± std.

The retrainings are fixed trials of a study of their own (``<study>-final``), so they are stored,
shown in the dashboard like any other trial, and a rerun trains only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from mnist_search.data.dataset import Splits
from mnist_search.files import write_atomic
from mnist_search.net.spec import ArchSpec
from mnist_search.search import records, storage
from mnist_search.search.artifacts import artifact_store
from mnist_search.search.config import Resolved
from mnist_search.search.final_time import FixedLength, Plan, TimeLeft, final_lengths, finalists
from mnist_search.search.objective import Objective
from mnist_search.search.progress import TrialLog, step_line
from mnist_search.search.records import TrialRecord, rank_key
from mnist_search.search.study import open_study
from mnist_search.stats import Stat, stat_of
from mnist_search.stopping import Deadline
from mnist_search.training.loop import DISTILL, TEMPERATURE
from mnist_search.training.retrain import SpecFile, teach

log = logging.getLogger("mnist_search")


def final_study_name(
    study_name: str, auto: bool = False, augment: str | None = None, teacher: str | None = None
) -> str:
    """``<study>-final``; with lengths set by the time left, ``<study>-final-auto``; with every
    finalist retrained with augmentation ``S``, ``-augment-S`` after it; with a teacher,
    ``-teacher-<its fingerprint>`` (so that retrainings of another recipe are never counted as
    seeds of these)."""
    return (
        f"{study_name}-final"
        + ("-auto" if auto else "")
        + (f"-augment-{augment}" if augment else "")
        + (f"-teacher-{teacher}" if teacher else "")
    )


def final_study_names(study_name: str, existing: Iterable[str] = ()) -> list[str]:
    """Every name a final stage of ``study_name`` may have, the default ones first, then those
    with a teacher among the ``existing`` names."""
    from mnist_search.data.augment import STRENGTHS

    names = [
        final_study_name(study_name, auto, augment)
        for augment in (None, *STRENGTHS)
        for auto in (True, False)
    ]
    prefix = f"{study_name}-final"
    return names + sorted(n for n in existing if n.startswith(prefix) and "-teacher-" in n)


def teacher_fingerprint(teacher: SpecFile) -> str:
    """Eight hex digits that tell one teacher (net, recipe, length, seed) from another."""
    body = json.dumps(teacher.to_dict(), sort_keys=True).encode()
    return hashlib.md5(body, usedforsecurity=False).hexdigest()[:8]


def recipe_of(src: TrialRecord, augment: str | None = None) -> dict[str, Any]:
    """The training settings a finalist is retrained with: its search trial's, with
    ``augment`` in place of its own augmentation when given."""
    return {**src.recipe(), "augment": augment} if augment else src.recipe()


def _key(r: TrialRecord) -> tuple[Any, Any]:
    return r.source_trial, r.seed


def best_sampled(study: optuna.Study) -> TrialRecord | None:
    """The best complete trial whose net this search sampled (not a warm start or fixed net)."""
    sampled = [r for r in records.complete(study) if r.origin is records.Origin.SAMPLED]
    return min(sampled, key=rank_key, default=None)


def wanted(sources: list[TrialRecord], seeds: int) -> set[tuple[int, int]]:
    """The (candidate, seed) retrainings this final stage is made of."""
    return {(src.number, seed) for src in sources for seed in range(seeds)}


def enqueue_final(
    final: optuna.Study,
    sources: list[TrialRecord],
    seeds: int,
    epochs: dict[int, int] | None = None,
    augment: str | None = None,
    distill: bool = False,
) -> int:
    """Queue the wanted retrainings not yet finished, queued or running; return how many of the
    wanted ones are still to run. ``epochs`` gives a length per source trial (else the final
    study's protocol decides); ``augment`` replaces each candidate's augmentation; ``distill``
    adds a teacher's outputs to each recipe's loss."""
    taught = {"distill": DISTILL, "temperature": TEMPERATURE} if distill else {}
    runs: Iterator[tuple[tuple[int, int], dict[str, Any], dict[str, Any]]] = (
        (
            (src.number, seed),
            {},
            dict(
                source_trial=src.number,
                seed=seed,
                source_value=src.val_accuracy,
                fixed_spec=src.spec,
                fixed_training=recipe_of(src, augment) | taught,
                **({"epochs": epochs[src.number]} if epochs else {}),
            ),
        )
        for src in sources
        for seed in range(seeds)
    )
    # A running retraining is a pending one: a second process must not queue it again.
    todo, _ = records.queue_missing(
        final,
        runs,
        _key,
        finished=(TrialState.COMPLETE, TrialState.PRUNED),
        pending=(TrialState.WAITING, TrialState.RUNNING),
    )
    return todo


@dataclass
class Candidate:
    source_trial: int
    n_params: int
    architecture: str
    spec: dict[str, Any]
    training: dict[str, Any]
    seeds: list[int]
    val: list[float]
    test: list[float]
    epochs: int | None = None  # of its retrainings (the longest, should a rerun have mixed)
    origin: str = "sampled by this search"  # TrialRecord.provenance of its search trial

    @property
    def val_stat(self) -> Stat:
        return stat_of(self.val)

    @property
    def test_stat(self) -> Stat:
        return stat_of(self.test)


def summarize_final(final: optuna.Study, sources: list[TrialRecord], seeds: int) -> list[Candidate]:
    """One row per candidate with its finished seeds, best mean validation accuracy first."""
    by_source: dict[int, list[records.FinalRun]] = {}
    for r in records.final_runs(final):
        if r.seed < seeds:
            by_source.setdefault(r.source_trial, []).append(r)
    rows = []
    for src in sources:
        runs = sorted(by_source.get(src.number, []), key=lambda r: r.seed)
        if not runs or src.n_params is None:
            continue
        # What the retrainings were trained with (a final stage may replace the augmentation).
        training = next((r.training for r in runs if r.training), None) or src.recipe()
        rows.append(
            Candidate(
                src.number,
                src.n_params,
                src.architecture or "",
                src.spec or {},
                training,
                [r.seed for r in runs],
                [r.val_accuracy for r in runs],
                [r.test_accuracy for r in runs],
                max((r.epochs or 0) for r in runs) or None,
                src.provenance,
            )
        )
    # Selection looks at validation only; fewer parameters break ties.
    return sorted(rows, key=lambda c: (-c.val_stat.mean, c.n_params))


def write_spec_file(
    path: Path, cand: Candidate, epochs: int, meta: dict[str, Any], teacher: SpecFile | None = None
) -> None:
    """The chosen net as a file ``mnist-search train --spec FILE --seeds N`` reproduces (with
    its teacher, which that command trains first)."""
    ArchSpec.from_dict(cand.spec)  # refuse to write something that does not load back
    v, t = cand.val_stat, cand.test_stat
    body = {
        "spec": cand.spec,
        "training": cand.training,
        "epochs": epochs,
        "n_params": cand.n_params,
        "architecture": cand.architecture,
        "source_trial": cand.source_trial,
        "origin": cand.origin,
        "seed": cand.seeds[0],
        "result": {
            "seeds": cand.seeds,
            "val_accuracy": cand.val,
            "test_accuracy": cand.test,
            "val_mean": v.mean,
            "val_std": v.std,
            "test_mean": t.mean,
            "test_std": t.std,
        },
        **meta,
    }
    if teacher is not None:
        body["teacher"] = teacher.to_dict()
    write_atomic(path, json.dumps(body, indent=2) + "\n")


@dataclass
class FinalOutcome:
    """What the final stage retrained and chose; ``chosen`` is None when nothing finished."""

    epochs: int | None  # None: each candidate's own, set by the time left
    seeds: int
    candidates: list[Candidate] = field(default_factory=list)
    best_spec: Path | None = None
    skipped: str | None = None  # why nothing was retrained, or nothing chosen
    study_name: str | None = None  # the study holding the retrainings (what to export)
    # The search's best net that it sampled itself (not a warm start), after its search trial.
    best_sampled: TrialRecord | None = None
    interrupted: bool = False  # a signal stopped it; the same command trains the rest
    augment: str | None = None  # the augmentation every finalist was retrained with, if set
    teacher: dict[str, Any] | None = None  # the teacher every retraining learned from, if any

    @property
    def chosen(self) -> Candidate | None:
        """The best by mean validation accuracy among candidates with every seed finished."""
        full = [c for c in self.candidates if len(c.seeds) == self.seeds]
        return full[0] if full else None


class FinalStage:
    """The second stage of a search, made from its resolved config: opened before the search (a
    study left by a different final stage stops the run before any training), then ``run`` once
    the search is done. One loop trains the finalists in turn, each for the length its ``Plan``
    gives as it starts (``FixedLength``, or ``TimeLeft`` when the time limit sets lengths)."""

    def __init__(self, cfg: Resolved, search: optuna.Study) -> None:
        self.cfg, self.search = cfg, search
        # With lengths set by the time left, each retraining records its own length; the study
        # then keeps the search's protocol, and a study of its own name keeps the two apart.
        self.auto = cfg.auto_final
        t = cfg.final.teacher
        self.teacher = None if t is None else SpecFile.read(t, "final_teacher")
        self.study = open_study(
            storage.open_storage(cfg.storage, heartbeat=cfg.heartbeat),
            final_study_name(
                cfg.study_name,
                auto=self.auto,
                augment=cfg.final.augment_override,
                teacher=None if self.teacher is None else teacher_fingerprint(self.teacher),
            ),
            cfg.budget,
            cfg.protocol if self.auto else cfg.final_protocol,
            seed=cfg.seed,
            pruner="none",
            space=cfg.space,
        )

    def _sources(self, deadline: Deadline) -> tuple[list[TrialRecord], Plan]:
        """The finalists (with the incumbent when asked) and how long each trains."""
        cfg, final = self.cfg, self.cfg.final
        if not self.auto:
            plan: Plan = FixedLength(cfg.final_protocol.epochs)
            return finalists(self.search, final.top, final.incumbent), plan
        left = deadline.left() or 0.0
        log.info("final stage: %.0f s left; finalists chosen for an equal share each", left)
        lengths = final_lengths(
            self.search,
            final.top,
            final.seeds,
            cfg.protocol.epochs,
            left,
            max_epochs=final.max_epochs,
            incumbent=final.incumbent,
        )
        by_number = {r.number: r for r in records.complete(self.search)}
        plan = TimeLeft(deadline, self.search, self.study, cfg.protocol.epochs, final.max_epochs)
        return [by_number[n] for n in lengths], plan

    def run(self, splits: Splits, deadline: Deadline) -> FinalOutcome:
        """Retrain the finalists with several seeds, choose on mean validation accuracy, write
        the chosen net's spec file; a rerun trains only the runs not finished yet."""
        cfg, seeds, augment = self.cfg, self.cfg.final.seeds, self.cfg.final.augment_override
        sources, plan = self._sources(deadline)
        fixed = plan.length if isinstance(plan, FixedLength) else None
        out = FinalOutcome(fixed, seeds, study_name=self.study.study_name, augment=augment)
        out.best_sampled = best_sampled(self.search)
        if not sources:
            out.skipped = "the search has no complete searched trial"
            return out
        # A run killed mid-retraining left a RUNNING trial: fail it now (and queue its retry)
        # rather than after its heartbeats run out.
        optuna.storages.fail_stale_trials(self.study)
        done = {(r.source_trial, r.seed) for r in records.complete(self.study)}
        left = [(s.number, k) for s in sources for k in range(seeds) if (s.number, k) not in done]
        targets = None
        if self.teacher is not None and left:  # its time is the run's: the plan sees it spent
            targets, out.teacher = teach(self.teacher, splits, cfg.speed)
        log.info(
            "final stage: %d candidate(s) × %d seed(s), %s; %d run(s) to train (study %r)",
            len(sources),
            seeds,
            plan.describe(),
            len(left),
            self.study.study_name,
        )
        objective = Objective(
            cfg.budget,
            cfg.final_protocol,
            splits,
            progress=step_line,
            artifact_store=artifact_store(cfg.artifacts),
            speed=cfg.speed,
            space=cfg.space,
            wanted=wanted(sources, seeds),
            teacher=targets,
        )
        try:
            for src in sources:
                if not any(n == src.number for n, _ in left):
                    continue
                epochs = plan.epochs(src, len(left))
                lengths = None if epochs is None else {src.number: epochs}
                enqueue_final(self.study, [src], seeds, lengths, augment, targets is not None)
                # Every waiting trial is taken in turn; those queued for an earlier choice of
                # candidates are pruned at once by the objective (``wanted``).
                waiting = len(self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
                self.study.optimize(objective, n_trials=waiting, callbacks=[TrialLog()], catch=())
                left = [k for k in left if k[0] != src.number]
        except KeyboardInterrupt:
            out.interrupted = True
            log.info(
                "interrupted: finished retrainings are kept (shown below); run again to train "
                "the rest"
            )
        return self._choose(sources, out, fixed)

    def _choose(self, sources: list[TrialRecord], out: FinalOutcome, epochs: Any) -> FinalOutcome:
        """Summarize the retrainings, choose on validation, write the chosen net's spec file."""
        seeds, best_spec = self.cfg.final.seeds, Path(self.cfg.best_spec)
        out.candidates = summarize_final(self.study, sources, seeds)
        if out.chosen is None:
            out.skipped = (
                f"no candidate has all {seeds} seed(s) retrained yet (see above); run the "
                "same command again to finish them"
            )
            return out
        sampled = out.best_sampled
        meta = {
            **self.cfg.spec_meta(),
            "best_sampled": None
            if sampled is None
            else {
                "trial": sampled.number,
                "n_params": sampled.n_params,
                "architecture": sampled.architecture,
                "val_accuracy": sampled.val_accuracy,
                "epochs": sampled.epochs,
            },
        }
        try:
            write_spec_file(best_spec, out.chosen, out.chosen.epochs or epochs, meta, self.teacher)
            out.best_spec = best_spec
        except OSError as e:  # checked before the search; the results stay in the final study
            log.error(
                "could not write %s: %s; the retrainings are kept in study %r",
                best_spec,
                e,
                self.study.study_name,
            )
        return out
