"""The second stage of a search: retrain its best candidates from scratch at full length with
several seeds, choose on mean validation accuracy, and report test accuracy as mean ± std.

The retrainings are fixed trials of a study of their own (``<study>-final``), so they are stored,
shown in the dashboard like any other trial, and a rerun trains only what is missing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import TrialState

from mnist_search.files import write_atomic
from mnist_search.net.spec import ArchSpec
from mnist_search.search import records
from mnist_search.search.final_time import finalists, with_incumbent
from mnist_search.search.records import TrialRecord
from mnist_search.stats import Stat, stat_of

log = logging.getLogger("mnist_search")


def final_study_name(study_name: str, auto: bool = False, augment: str | None = None) -> str:
    """``<study>-final``; with lengths set by the time left, ``<study>-final-auto``; with every
    finalist retrained with augmentation ``S``, ``-augment-S`` after it (so that retrainings of
    another recipe are never counted as seeds of these)."""
    return (
        f"{study_name}-final"
        + ("-auto" if auto else "")
        + (f"-augment-{augment}" if augment else "")
    )


def final_study_names(study_name: str) -> list[str]:
    """Every name a final stage of ``study_name`` may have, the default ones first."""
    from mnist_search.data.augment import STRENGTHS

    return [
        final_study_name(study_name, auto, augment)
        for augment in (None, *STRENGTHS)
        for auto in (True, False)
    ]


def recipe_of(src: TrialRecord, augment: str | None = None) -> dict[str, Any]:
    """The training settings a finalist is retrained with: its search trial's, with
    ``augment`` in place of its own augmentation when given."""
    return {**src.recipe(), "augment": augment} if augment else src.recipe()


def _key(r: TrialRecord) -> tuple[Any, Any]:
    return r.source_trial, r.seed


def best_sampled(study: optuna.Study) -> TrialRecord | None:
    """The best complete trial whose net this search sampled (not a warm start or fixed net)."""
    sampled = [r for r in records.complete(study) if r.origin is records.Origin.SAMPLED]
    return min(sampled, key=lambda r: (-(r.val_accuracy or 0.0), r.n_params or 0), default=None)


def wanted(sources: list[TrialRecord], seeds: int) -> set[tuple[int, int]]:
    """The (candidate, seed) retrainings this final stage is made of."""
    return {(src.number, seed) for src in sources for seed in range(seeds)}


def enqueue_final(
    final: optuna.Study,
    sources: list[TrialRecord],
    seeds: int,
    epochs: dict[int, int] | None = None,
    augment: str | None = None,
) -> int:
    """Queue the wanted retrainings not yet finished, queued or running; return how many of the
    wanted ones are still to run. ``epochs`` gives a length per source trial (else the final
    study's protocol decides); ``augment`` replaces each candidate's augmentation."""
    runs: Iterator[tuple[tuple[int, int], dict[str, Any], dict[str, Any]]] = (
        (
            (src.number, seed),
            {},
            dict(
                source_trial=src.number,
                seed=seed,
                source_value=src.val_accuracy,
                fixed_spec=src.spec,
                fixed_training=recipe_of(src, augment),
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


def write_spec_file(path: Path, cand: Candidate, epochs: int, meta: dict[str, Any]) -> None:
    """The chosen net as a file ``mnist-search train --spec FILE --seeds N`` reproduces."""
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

    @property
    def chosen(self) -> Candidate | None:
        """The best by mean validation accuracy among candidates with every seed finished."""
        full = [c for c in self.candidates if len(c.seeds) == self.seeds]
        return full[0] if full else None


def run_final(
    study: optuna.Study,
    final: optuna.Study,
    make_objective: Callable[[set[tuple[int, int]]], Callable],
    *,
    top: int,
    seeds: int,
    epochs: int | dict[int, int],
    best_spec: Path,
    meta: dict[str, Any],
    callbacks: list,
    replan: Callable[[TrialRecord, int], int] | None = None,
    augment: str | None = None,
    incumbent: bool = False,
) -> FinalOutcome:
    """Retrain the search's top candidates with several seeds; choose on validation; write the
    chosen net to ``best_spec``. ``epochs``: one length for all, or one per source trial.
    ``make_objective(wanted)`` gives the objective that trains the wanted (trial, seed) runs.
    With ``replan(source, runs_left)``, each candidate's length is set again just before it
    trains, from the time then left (the time the earlier ones did not use goes to the later).
    ``augment``: every candidate retrained with this augmentation instead of its own.
    ``incumbent``: the search's best warm-start net is a candidate too (``with_incumbent``)."""
    per_source = epochs if isinstance(epochs, dict) else None
    fixed = epochs if isinstance(epochs, int) else None
    out = FinalOutcome(
        None if per_source else fixed, seeds, study_name=final.study_name, augment=augment
    )
    out.best_sampled = best_sampled(study)
    if per_source:  # chosen by final_lengths
        by_number = {r.number: r for r in records.complete(study)}
        sources = [by_number[n] for n in per_source]
    else:
        sources = finalists(study, top)
        if incumbent:
            sources = with_incumbent(study, sources)
    if not sources:
        out.skipped = "the search has no complete searched trial"
        return out
    # A run killed mid-retraining left a RUNNING trial: fail it now (and queue its retry) rather
    # than after its heartbeats run out.
    optuna.storages.fail_stale_trials(final)
    if replan is not None and per_source:
        return _run_replanned(
            study,
            final,
            make_objective,
            sources,
            seeds,
            replan,
            out,
            best_spec,
            meta,
            callbacks,
            augment,
        )
    todo = enqueue_final(final, sources, seeds, per_source, augment)
    length = (
        ", ".join(f"trial {n}: {e}" for n, e in per_source.items()) if per_source else f"{epochs}"
    )
    log.info(
        "final stage: %d candidate(s) × %d seed(s), epochs %s; %d run(s) to train (study %r)",
        len(sources),
        seeds,
        length,
        todo,
        final.study_name,
    )
    # Every waiting trial is taken in turn; those queued for an earlier choice of candidates
    # are pruned at once by the objective (``wanted``), so they cannot use up the runs.
    waiting = len(final.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    if todo:
        objective = make_objective(wanted(sources, seeds))
        try:
            final.optimize(objective, n_trials=waiting, callbacks=callbacks, catch=())
        except KeyboardInterrupt:
            out.interrupted = True
            log.info(
                "interrupted: finished retrainings are kept (shown below); run again to "
                "train the rest"
            )
    return _choose(final, sources, seeds, out, best_spec, meta, epochs)


def _choose(
    final: optuna.Study,
    sources: list[TrialRecord],
    seeds: int,
    out: FinalOutcome,
    best_spec: Path,
    meta: dict[str, Any],
    epochs: Any,
) -> FinalOutcome:
    """Summarize the retrainings, choose on validation, write the chosen net's spec file."""
    out.candidates = summarize_final(final, sources, seeds)
    if out.chosen is None:
        out.skipped = (
            f"no candidate has all {seeds} seed(s) retrained yet (see above); run the "
            "same command again to finish them"
        )
    if out.chosen is not None:
        try:
            sampled = out.best_sampled
            meta = {
                **meta,
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
            write_spec_file(best_spec, out.chosen, out.chosen.epochs or epochs, meta)
            out.best_spec = best_spec
        except OSError as e:  # checked before the search; the results stay in the final study
            log.error(
                "could not write %s: %s; the retrainings are kept in study %r",
                best_spec,
                e,
                final.study_name,
            )
    return out


def _run_replanned(
    study: optuna.Study,
    final: optuna.Study,
    make_objective: Callable,
    sources: list[TrialRecord],
    seeds: int,
    replan: Callable[[TrialRecord, int], int],
    out: FinalOutcome,
    best_spec: Path,
    meta: dict[str, Any],
    callbacks: list,
    augment: str | None = None,
) -> FinalOutcome:
    """One candidate at a time: its length set from the time left when it starts."""
    objective = make_objective(wanted(sources, seeds))
    done = {(r.source_trial, r.seed) for r in records.complete(final)}
    left = [
        (s.number, seed) for s in sources for seed in range(seeds) if (s.number, seed) not in done
    ]
    log.info(
        "final stage: %d candidate(s) × %d seed(s), lengths set from the time left as each "
        "starts; %d run(s) to train (study %r)",
        len(sources),
        seeds,
        len(left),
        final.study_name,
    )
    try:
        for src in sources:
            mine = [k for k in left if k[0] == src.number]
            if not mine:
                continue
            epochs = replan(src, len(left))
            enqueue_final(final, [src], seeds, {src.number: epochs}, augment)
            waiting = len(final.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
            final.optimize(objective, n_trials=waiting, callbacks=callbacks, catch=())
            left = [k for k in left if k[0] != src.number]
    except KeyboardInterrupt:
        out.interrupted = True
        log.info(
            "interrupted: finished retrainings are kept (shown below); run again to train the rest"
        )
    return _choose(final, sources, seeds, out, best_spec, meta, None)
