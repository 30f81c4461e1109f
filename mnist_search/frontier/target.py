"""``--target-accuracy A``: the smallest net a frontier run retrained that reaches A on validation.

The pool is every finalist the budgets' final stages retrained with all their seeds (read back
from the storage, so a finished or resumed run answers the same), not the one-epoch search
trials: a net is judged as it would be used, trained to its final length and averaged over its
seeds. Selection reads validation only; fewer parameters win, then the higher validation mean.
The chosen net is written as ``target-<A>.json`` in the ``found/`` format (``train --spec``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna

from mnist_search.search import records, storage
from mnist_search.search.config import SearchConfig
from mnist_search.search.final import (
    Candidate,
    final_study_names,
    summarize_final,
    write_spec_file,
)
from mnist_search.search.records import TrialRecord


@dataclass(frozen=True)
class TargetOutcome:
    target: float  # validation accuracy (%) asked for
    budget: int | None  # the budget whose final stage retrained the chosen net
    chosen: Candidate | None  # None: no finalist reached the target
    best_val: float | None  # the best validation mean of any finalist, for the miss's line
    pool: int  # finalists with every seed finished
    spec_file: Path | None = None


def _url(cfg: SearchConfig) -> str:
    return cfg.storage or storage.default_storage()


def finalists(storage: str, study_name: str, seeds: int) -> list[Candidate]:
    """Every finalist of one budget with all ``seeds`` retrainings, best validation first."""
    names = optuna.get_all_study_names(storage)
    if study_name not in names:
        return []
    study = optuna.load_study(study_name=study_name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    out: list[Candidate] = []
    # Lengths set by the time left or fixed by --final-epochs, each recipe's own or augmented.
    for name in final_study_names(study_name, names):
        if name not in names:
            continue
        final = optuna.load_study(study_name=name, storage=storage)
        numbers = sorted({n for r in records.complete(final) if (n := r.source_trial) is not None})
        sources = [TrialRecord.of(trials[n]) for n in numbers if n < len(trials)]
        out += [c for c in summarize_final(final, sources, seeds) if len(c.seeds) == seeds]
    return out


def smallest_reaching(target: float, searches: dict[int, SearchConfig], out: Path) -> TargetOutcome:
    """The fewest-parameter finalist of ``searches`` (budget → its search) whose validation mean
    reaches ``target``; its spec file written to ``out``."""
    pool = [
        (b, c)
        for b, cfg in searches.items()
        for c in finalists(_url(cfg), cfg.study_name or "", cfg.final.seeds)
    ]
    best = max((c.val_stat.mean for _, c in pool), default=None)
    reaching = [(b, c) for b, c in pool if c.val_stat.mean >= target]
    if not reaching:
        return TargetOutcome(target, None, None, best, len(pool))
    budget, chosen = min(reaching, key=lambda bc: (bc[1].n_params, -bc[1].val_stat.mean))
    path = out / f"target-{target:g}.json"
    meta = {**searches[budget].spec_meta(), "target_accuracy": target}
    write_spec_file(path, chosen, chosen.epochs or 1, meta)
    return TargetOutcome(target, budget, chosen, best, len(pool), path)
