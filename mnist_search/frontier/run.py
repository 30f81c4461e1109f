"""The frontier: the best net at each of several budgets from one command.

The budgets are searched in turn, smallest first, each by the same search as ``optimize`` (its
own study ``<prefix>-<B>``, so pruning compares a trial only with trials of its own budget), for
an equal share of the time still left, then retrained by its own final stage with 3 seeds for as
many epochs as that budget needs (``published.epoch_cap``), chosen on validation only. Each
budget after the first also starts from the net chosen at the nearest smaller one, widened to
it: what is learnt at 2,000 is a candidate at 5,000.

Each finished budget is recorded in ``<out>/frontier.json`` and its net in
``<out>/budget-<B>.json``; a run started again with the same options skips the finished budgets
and resumes the others' studies. With ``confirm``, each row's net is then trained again with
seeds the run never used (3, 4, 5 after the final stage's 0, 1, 2), and those figures are
recorded beside the row's: a row is above a goal only if both seed sets' means are.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mnist_search.catalog.published import epoch_cap
from mnist_search.device import resolve_device
from mnist_search.errors import ConfigError
from mnist_search.files import check_writable, read_json, write_atomic
from mnist_search.frontier.target import TargetOutcome, smallest_reaching
from mnist_search.search import storage
from mnist_search.search.config import OWN, SEARCH_SHARE, FinalSettings, SearchConfig
from mnist_search.stats import stat_of
from mnist_search.stopping import Deadline

log = logging.getLogger("mnist_search")

DEFAULT_BUDGETS = (1000, 2000, 5000, 10000, 25000)
DEFAULT_TIMEOUT = 9000.0  # 2.5 hours for the five default budgets on a 2-core CPU
RECORD = "frontier.json"


def _frontier_search() -> SearchConfig:
    """What each budget's search is unless told otherwise: the default search, with 3 seeds
    for every finalist and the incumbent retrained beside them (what is learnt at one budget is
    weighed at full length at the next, not only by its one-epoch trial)."""
    return SearchConfig(final=FinalSettings(seeds=3, incumbent=True))


@dataclass(frozen=True, kw_only=True)
class FrontierConfig:
    """Several budgets from one run: ``search`` is every budget's search (the options of
    ``optimize``); the budget, its study, its share of ``timeout``, its epoch cap and where its
    net is written are set per budget (``search_for``)."""

    search: SearchConfig = field(default_factory=_frontier_search)
    budgets: tuple[int, ...] = DEFAULT_BUDGETS
    timeout: float = DEFAULT_TIMEOUT  # seconds, all budgets and their final stages together
    out: str | Path = "frontier"
    study_prefix: str = "frontier"
    # The smallest retrained net reaching this validation accuracy (%), reported beside the rows.
    target_accuracy: float | None = None
    # After every budget: each row's net trained again with as many fresh seeds.
    confirm: bool = False
    # Then each row's spec file, with its provenance, written into this folder of known nets.
    ship: str | Path | None = None

    @property
    def final(self) -> FinalSettings:
        return self.search.final

    def check(self) -> None:
        if self.target_accuracy is not None and not 0 < self.target_accuracy < 100:
            raise ConfigError(
                "target_accuracy",
                f"{self.target_accuracy}: must be a validation accuracy in percent, above 0 "
                "and below 100, e.g. 99.0",
            )
        if not self.budgets:
            raise ConfigError("budgets", "none given; e.g. 1000,2000,5000")
        if self.ship is not None:  # refused now, not after hours of work
            check_writable("ship", self.ship, folder=True)
        if len(set(self.budgets)) != len(self.budgets):
            raise ConfigError("budgets", f"{','.join(map(str, self.budgets))}: a budget repeats")
        if self.final.seeds < 1:
            raise ConfigError(
                "final_seeds", f"{self.final.seeds}: must be at least 1 (every budget is retrained)"
            )
        if not 0 < self.timeout < math.inf:
            raise ConfigError(
                "timeout", f"{self.timeout}: must be a positive, finite number of seconds"
            )
        for b in self.budgets:  # every other setting is checked by the search config it makes
            try:
                self.search_for(b, self.timeout).check()
            except ConfigError as e:
                # The search's names for what the frontier calls otherwise.
                names = {"budget": "budgets", "epochs": "search_epochs"}
                if e.option not in names:
                    raise
                raise ConfigError(names[e.option], e.rest) from None

    def study_for(self, budget: int) -> str:
        """``<prefix>-<budget>``; on data other than MNIST ``<prefix>-<dataset>-<budget>``."""
        kind = self.search.protocol.dataset.split(":")[0]
        return (
            f"{self.study_prefix}-{budget}"
            if kind == "mnist"
            else (f"{self.study_prefix}-{kind}-{budget}")
        )

    def search_for(self, budget: int, timeout: float) -> SearchConfig:
        """The search one budget gets."""
        out = Path(self.out)
        return dataclasses.replace(
            self.search,
            budget=budget,
            study_name=self.study_for(budget),
            timeout=timeout,
            warm_dirs=(str(out),),
            final=dataclasses.replace(self.final, max_epochs=epoch_cap(budget)),
            best_spec=str(out / f"budget-{budget}.json"),
        )


@dataclass(frozen=True)
class FrontierRow:
    """One budget's chosen net and how it was found."""

    budget: int
    study: str
    n_params: int
    architecture: str
    epochs: int | None
    seeds: int
    val_mean: float
    val_std: float
    test_mean: float
    test_std: float
    origin: str  # sampled by this search, or a known net widened (which)
    trials: int  # search trials that trained (not over budget, not stopped at once)
    wall_seconds: float  # search and final stage of this budget
    spec_file: str
    best_sampled_val: float | None = None  # the best net the search sampled, one-epoch val
    # The same net, recipe and length trained with seeds the run never used (``confirm``).
    fresh_seeds: list[int] | None = None
    fresh_val_mean: float | None = None
    fresh_val_std: float | None = None
    fresh_test_mean: float | None = None
    fresh_test_std: float | None = None


@dataclass
class FrontierOutcome:
    config: FrontierConfig
    rows: list[FrontierRow] = field(default_factory=list)
    missing: dict[int, str] = field(default_factory=dict)  # budget → why it has no row
    wall_seconds: float = 0.0
    interrupted: bool = False
    target: TargetOutcome | None = None  # with --target-accuracy
    dataset: str = "mnist"  # as read: an own folder by its fingerprint


def _trained(study) -> int:
    """Trials that trained at least to their first report (over-budget and time-cut ones not)."""
    from optuna.trial import TrialState

    return sum(
        1
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if t.intermediate_values
    )


_ROW_TYPES: dict[str, tuple[type, ...]] = {
    "budget": (int,),
    "study": (str,),
    "n_params": (int,),
    "architecture": (str,),
    "epochs": (int, type(None)),
    "seeds": (int,),
    "val_mean": (float, int),
    "val_std": (float, int),
    "test_mean": (float, int),
    "test_std": (float, int),
    "origin": (str,),
    "trials": (int,),
    "wall_seconds": (float, int),
    "spec_file": (str,),
    "best_sampled_val": (float, int, type(None)),
    "fresh_seeds": (list, type(None)),
    "fresh_val_mean": (float, int, type(None)),
    "fresh_val_std": (float, int, type(None)),
    "fresh_test_mean": (float, int, type(None)),
    "fresh_test_std": (float, int, type(None)),
}


def _row(d: Any, path: Path) -> FrontierRow:
    if not isinstance(d, dict):
        raise ConfigError("out", f"{path}: a row is not an object; use another --out")
    for name, kinds in _ROW_TYPES.items():
        v = d.get(name)
        if isinstance(v, bool) or not isinstance(v, kinds):
            raise ConfigError(
                "out",
                f"{path}: not a frontier record (row field {name!r} is {repr(v)[:40]}); use "
                "another --out",
            )
    seeds = d.get("fresh_seeds")
    if seeds is not None and not all(type(s) is int and s >= 0 for s in seeds):
        raise ConfigError(
            "out", f"{path}: not a frontier record (fresh_seeds {seeds!r:.40}); use another --out"
        )
    values: dict[str, Any] = {k: d.get(k) for k in _ROW_TYPES}  # each checked above
    return FrontierRow(**values)


def load_record(
    out: Path,
    final_augment: str = OWN,
    final_incumbent: bool = True,
    dataset: str = "mnist",
    final_teacher: str | None = None,
) -> dict[int, FrontierRow]:
    """The budgets an earlier run of this frontier finished (``frontier.json``) with the same
    final stage: the same augmentation, the incumbent retrained or not alike (a record from
    before the incumbent existed was made without it), the same teacher file or none. A run
    with another retrains them. A record made on other data is refused: its folder is that
    run's."""
    path = out / RECORD
    if not path.exists():
        return {}
    body = read_json(path)
    rows = body.get("rows") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise ConfigError("out", f"{path}: not a frontier record (no rows); use another --out")
    theirs = body.get("dataset", "mnist")
    if theirs != dataset:
        raise ConfigError(
            "out", f"{path}: a frontier on {theirs!s:.40}, not {dataset}; use another --out"
        )
    found = {r.budget: r for r in (_row(d, path) for d in rows)}
    same = (
        body.get("final_augment", OWN),
        body.get("final_incumbent", False),
        body.get("final_teacher"),
    )
    return found if same == (final_augment, final_incumbent, final_teacher) else {}


def save_record(out: Path, rows: list[FrontierRow], cfg: FrontierConfig, dataset: str) -> None:
    body = {
        "dataset": dataset,
        "budgets": list(cfg.budgets),
        "study_prefix": cfg.study_prefix,
        "final_augment": cfg.final.augment,
        "final_incumbent": cfg.final.incumbent,
        "final_teacher": cfg.final.teacher,
        "rows": [asdict(r) for r in sorted(rows, key=lambda r: r.budget)],
    }
    write_atomic(out / RECORD, json.dumps(body, indent=2) + "\n")


def run_frontier(cfg: FrontierConfig) -> FrontierOutcome:
    """Search and retrain every budget of ``cfg`` in turn; resume a run stopped before."""
    from mnist_search.search.engine import run_search

    cfg.check()
    out = Path(cfg.out)
    check_writable("out", out, folder=True)
    # Everything that can be refused is, before the folder is made.
    resolve_device(cfg.search.run.device)
    url = cfg.search.storage or storage.default_storage()
    storage.check(url, default=cfg.search.storage is None)
    dataset = cfg.search.protocol.load(cfg.search.run.data_dir).name
    done = load_record(out, cfg.final.augment, cfg.final.incumbent, dataset, cfg.final.teacher)
    out.mkdir(parents=True, exist_ok=True)
    done = {b: r for b, r in done.items() if r.study == cfg.study_for(b)}
    result = FrontierOutcome(cfg, dataset=dataset)
    start = time.time()
    deadline = Deadline.after(cfg.timeout)
    todo = [b for b in sorted(cfg.budgets) if b not in done]
    for b in sorted(done):
        if b in cfg.budgets:
            log.info("frontier: budget %s finished in an earlier run; kept", f"{b:,}")
    rows = [done[b] for b in sorted(done) if b in cfg.budgets]
    for i, budget in enumerate(todo):
        share = (deadline.left() or 0.0) / (len(todo) - i)
        if share <= 0:  # the budgets before it ran over: a row missing, not a search of 0 s
            result.missing[budget] = "no time left: the budgets before it used all of --timeout"
            log.warning("frontier: budget %s: no time left; not searched", f"{budget:,}")
            continue
        log.info(
            "frontier: budget %s gets %.0f s (an equal share of the %.0f s left%s), final "
            "retrainings up to %d epochs",
            f"{budget:,}",
            share,
            deadline.left() or 0.0,
            f"; {share * (1 - confirm_share(cfg)):.0f} s of it to confirm" if cfg.confirm else "",
            epoch_cap(budget),
        )
        t0 = time.time()
        outcome = run_search(cfg.search_for(budget, share * confirm_share(cfg)))
        if outcome.interrupted or (outcome.final is not None and outcome.final.interrupted):
            result.interrupted = True
            break
        chosen = outcome.final.chosen if outcome.final is not None else None
        if chosen is None:
            why = outcome.final.skipped if outcome.final is not None else "no final stage"
            result.missing[budget] = why or "nothing chosen"
            continue
        v, t = chosen.val_stat, chosen.test_stat
        sampled = outcome.final.best_sampled if outcome.final is not None else None
        rows.append(
            FrontierRow(
                budget=budget,
                study=outcome.config.study_name,
                n_params=chosen.n_params,
                architecture=chosen.architecture,
                epochs=chosen.epochs,
                seeds=len(chosen.seeds),
                val_mean=v.mean,
                val_std=v.std,
                test_mean=t.mean,
                test_std=t.std,
                origin=chosen.origin,
                trials=_trained(outcome.study),
                wall_seconds=round(time.time() - t0, 1),
                spec_file=str(out / f"budget-{budget}.json"),
                best_sampled_val=sampled.val_accuracy if sampled is not None else None,
            )
        )
        save_record(out, rows, cfg, dataset)  # a budget finished is never lost to a later failure
        if cfg.confirm:  # inside the time limit, in the rest of this budget's share
            rows = confirm_rows(cfg, rows, dataset)
    result.rows = sorted(rows, key=lambda r: r.budget)
    if cfg.confirm and not result.interrupted:  # rows kept from an earlier run, if unconfirmed
        result.rows = confirm_rows(cfg, result.rows, dataset)
    if cfg.target_accuracy is not None and not result.interrupted:
        searches = {r.budget: cfg.search_for(r.budget, cfg.timeout) for r in result.rows}
        result.target = smallest_reaching(cfg.target_accuracy, searches, out)
    result.wall_seconds = time.time() - start
    return result


def confirm_share(cfg: FrontierConfig) -> float:
    """The share of a budget's time its search and final stage get; with ``confirm`` the rest
    is for training the chosen net again with fresh seeds, so the time limit covers the whole
    run. The final stage spends its part (``1 - SEARCH_SHARE``) on the finalists' seeds, the
    incumbent's among them; confirming is one candidate's seeds again. An estimate: each budget's
    share is of the time still left, so one that runs over or under moves the later ones."""
    if not cfg.confirm:
        return 1.0
    candidates = cfg.final.top + (1 if cfg.final.incumbent else 0)
    return 1 / (1 + (1 - SEARCH_SHARE) / candidates)


def confirm_rows(cfg: FrontierConfig, rows: list[FrontierRow], dataset: str) -> list[FrontierRow]:
    """Each row's spec file trained again with fresh seeds (as many as the final stage used,
    numbered after them), under the file's own length, recipe and data split; recorded after
    each row, so a stopped run keeps the rows it confirmed. Test is read here as everywhere:
    reported beside the row, never used to choose."""
    from mnist_search.training.retrain import SpecFile, retrain

    seeds = cfg.final.seeds
    out, done = Path(cfg.out), []
    for r in rows:
        if r.fresh_seeds is None:
            log.info(
                "frontier: confirming budget %s with seeds %d-%d", f"{r.budget:,}", seeds,
                2 * seeds - 1,
            )  # fmt: skip
            fresh = retrain(
                SpecFile.read(r.spec_file), seed=seeds, seeds=seeds, run=cfg.search.run
            ).runs
            val = stat_of([x.val_accuracy for x in fresh])
            test = stat_of([x.test_accuracy for x in fresh])
            r = dataclasses.replace(
                r,
                fresh_seeds=[x.seed for x in fresh],
                fresh_val_mean=val.mean,
                fresh_val_std=val.std,
                fresh_test_mean=test.mean,
                fresh_test_std=test.std,
            )
        done.append(r)
        save_record(out, done + rows[len(done) :], cfg, dataset)
    return done
