"""The two searching commands: ``optimize`` (one budget) and ``frontier`` (several). Each declares
its options, makes one call into the library and renders the result."""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mnist_search.cli.options import (
    Amp,
    Artifacts,
    ChannelsLast,
    Compile,
    DataDir,
    DatasetName,
    Device,
    Epochs,
    FinalAugment,
    FinalIncumbent,
    FinalTeacher,
    Heartbeat,
    Parallel,
    Pruner,
    Quiet,
    SpaceName,
    Startup,
    Storage,
    Top,
    TrainSubset,
    ValSize,
    run_settings,
)
from mnist_search.errors import ConfigError
from mnist_search.search.warmstart import STARTUP

log = logging.getLogger("mnist_search")


def _epochs_or_auto(value: str) -> int | str:
    """'auto' or a whole number; anything else is left for the config check to name."""
    v = value.strip().lower()
    return int(v) if v.lstrip("-").isdigit() else v


def echo(lines: list[str]) -> None:
    for line in lines:
        typer.echo(line)


def optimize(
    budget: Annotated[int, typer.Option(help="Hard cap on trainable parameters.")] = 25000,
    n_trials: Annotated[
        Optional[int],
        typer.Option(help="Stop after this many trials (this run).", show_default=False),
    ] = None,
    timeout: Annotated[
        Optional[float],
        typer.Option(
            help="Stop after this many seconds; default 900 when --n-trials is not given. With "
            "--final-seeds it covers both stages.",
            show_default=False,
        ),
    ] = None,
    epochs: Epochs = 1,
    study_name: Annotated[
        Optional[str],
        typer.Option(
            help="Study name; default budget-<BUDGET>. The same name resumes the study.",
            show_default=False,
        ),
    ] = None,
    storage: Storage = None,
    seed: Annotated[
        Optional[int],
        typer.Option(
            help="Seed for sampler and training; fixes the trials of a one-process CPU study.",
            show_default=False,
        ),
    ] = None,
    device: Device = "auto",
    dataset: DatasetName = "mnist",
    data_dir: DataDir = None,
    train_subset: TrainSubset = None,
    val_size: ValSize = 5000,
    pruner: Pruner = "rungs",
    artifacts: Artifacts = None,
    warm_start: Annotated[
        str,
        typer.Option(
            metavar="found|documented|none",
            help="First trials: 'found' (the shipped nets found at the nearest budgets, fitted to "
            "this one), 'documented' (the write-up's nets that fit) or 'none'.",
        ),
    ] = "found",
    startup: Startup = STARTUP,
    top: Top = 10,
    workers: Annotated[
        int,
        typer.Option(
            help="Worker processes on this machine, all on the same study (GPUs round-robin)."
        ),
    ] = 1,
    heartbeat: Heartbeat = 10,
    parallel: Parallel = 1,
    amp: Amp = None,
    channels_last: ChannelsLast = None,
    compile_model: Compile = False,
    space: SpaceName = "modern",
    final_seeds: Annotated[
        int,
        typer.Option(
            help="After the search, retrain the best candidates from scratch with this many seeds "
            "(0: no final stage)."
        ),
    ] = 1,
    final_epochs: Annotated[
        str,
        typer.Option(
            metavar="auto|E",
            help="Epochs of each final retraining, or 'auto': as many as the time left allows "
            "(without --timeout: --epochs).",
        ),
    ] = "auto",
    final_top: Annotated[
        int,
        typer.Option(
            help="How many of the best candidates (by validation) the final stage retrains."
        ),
    ] = 2,
    final_augment: FinalAugment = "own",
    final_incumbent: FinalIncumbent = False,
    final_teacher: FinalTeacher = None,
    best_spec: Annotated[
        Optional[Path],
        typer.Option(
            help="Where the final stage writes the chosen net for 'train --spec'; default "
            "studies/<study-name>-best.json.",
            show_default=False,
        ),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Search architectures and training settings under --budget parameters.

    Start it any number of times, on one machine or many, with the same --storage and
    --study-name: all processes work on the same study. Then (unless --final-seeds 0) the best
    candidates are retrained from scratch, by default each for the epochs its share of the time
    left allows, and the chosen one is reported on the test set."""
    from mnist_search.cli.render import final_summary, progress, study_summary
    from mnist_search.search.config import SearchConfig
    from mnist_search.search.engine import run_search
    from mnist_search.training.protocol import Protocol

    config = SearchConfig(
        budget=budget,
        space=space,
        protocol=Protocol(
            epochs=epochs, train_subset=train_subset, val_size=val_size, dataset=dataset
        ),
        n_trials=n_trials,
        timeout=timeout,
        study_name=study_name,
        storage=storage,
        seed=seed,
        pruner=pruner,
        warm_start=warm_start,
        startup=startup,
        workers=workers,
        heartbeat=heartbeat,
        run=run_settings(device, data_dir, amp, channels_last, compile_model, parallel),
        artifacts=artifacts,
        final=_final(
            final_seeds, final_top, final_augment, final_incumbent, final_teacher, final_epochs
        ),
        best_spec=best_spec,
    )
    with progress(quiet):
        out = run_search(config)
    echo(study_summary(out.study, out.config.storage, top))
    if not out.ok:
        log.info("worker exit statuses: %s", out.worker_exit_codes)
        raise typer.Exit(1)
    if out.final is not None:
        echo(final_summary(out.final, out.config.storage))


def _budgets(value: str) -> tuple[int, ...]:
    """``1000,2000,5000`` → (1000, 2000, 5000); anything else is one line naming it."""
    parts = [p.strip().replace("_", "") for p in value.split(",")]
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ConfigError(
            "budgets", f"{value!r}: must be positive whole numbers of parameters, e.g. 1000,5000"
        )
    return tuple(int(p) for p in parts)


def _search_protocol(epochs: int, train_subset: int | None, val_size: int, dataset: str):
    """Each budget's search protocol: the frontier's --search-epochs is the search's --epochs,
    and an error names the option the user gave."""
    from mnist_search.training.protocol import Protocol

    try:
        return Protocol(
            epochs=epochs, train_subset=train_subset, val_size=val_size, dataset=dataset
        )
    except ConfigError as e:
        if e.option != "epochs":
            raise
        raise ConfigError("search_epochs", e.rest) from None


def frontier(
    budgets: Annotated[
        str, typer.Option(help="Comma-separated parameter budgets, each searched and retrained.")
    ] = "1000,2000,5000,10000,25000",
    timeout: Annotated[
        float,
        typer.Option(help="Seconds for all budgets together, shared equally by those left."),
    ] = 9000.0,
    out: Annotated[
        Path,
        typer.Option(
            help="Folder for frontier.md, frontier.html, budget-<B>.json and frontier.json (the "
            "record a rerun resumes from)."
        ),
    ] = Path("frontier"),
    seed: Annotated[int, typer.Option(help="Seed for every budget's sampler and training.")] = 0,
    storage: Storage = None,
    device: Device = "auto",
    workers: Annotated[
        int, typer.Option(help="Worker processes per budget on this machine, on the same study.")
    ] = 1,
    dataset: DatasetName = "mnist",
    data_dir: DataDir = None,
    train_subset: TrainSubset = None,
    val_size: ValSize = 5000,
    search_epochs: Annotated[
        int,
        typer.Option(help="Training epochs of each search trial (the final stage sets its own)."),
    ] = 1,
    warm_start: Annotated[
        str,
        typer.Option(
            metavar="found|none",
            help="Also start each budget from the shipped nets ('found') or not ('none'); the "
            "net chosen at the next smaller budget is queued either way.",
        ),
    ] = "found",
    final_seeds: Annotated[int, typer.Option(help="Seeds each finalist is retrained with.")] = 3,
    final_top: Annotated[int, typer.Option(help="Finalists per budget.")] = 2,
    final_augment: FinalAugment = "own",
    final_incumbent: FinalIncumbent = True,
    final_teacher: FinalTeacher = None,
    study_prefix: Annotated[
        str, typer.Option(help="Each budget's study is <prefix>-<budget>.")
    ] = "frontier",
    target_accuracy: Annotated[
        Optional[float],
        typer.Option(
            help="Also report the smallest retrained net reaching this validation accuracy "
            "(%), written as target-<A>.json.",
            show_default=False,
        ),
    ] = None,
    confirm: Annotated[
        bool,
        typer.Option(
            help="After each budget, train its row's net again with as many fresh seeds as "
            "--final-seeds (3, 4, 5 after 0, 1, 2) and report them beside the row; inside "
            "--timeout (with the default finalists and incumbent, a sixth of each budget's share)."
        ),
    ] = False,
    ship: Annotated[
        Optional[Path],
        typer.Option(
            help="Then write each row's spec file, with its provenance, into this folder of "
            "known nets (e.g. mnist_search/catalog/found) and remove its other spec files.",
            show_default=False,
        ),
    ] = None,
    artifacts: Artifacts = None,
    space: SpaceName = "modern",
    pruner: Pruner = "rungs",
    startup: Startup = STARTUP,
    heartbeat: Heartbeat = 10,
    parallel: Parallel = 1,
    amp: Amp = None,
    channels_last: ChannelsLast = None,
    compile_model: Compile = False,
    quiet: Quiet = False,
) -> None:
    """The best net at each of several budgets, from one run.

    Budgets are searched in turn, smallest first, each also starting from the net chosen at
    the one below, widened; each budget's finalists are retrained with --final-seeds seeds for
    as many epochs as it needs (caps: 100 at 1,000 parameters, 60 at 2,000, 30 at 5,000, else
    20) and chosen on validation. Writes --out/frontier.md, frontier.html and budget-<B>.json
    (for 'train --spec'); the same command again resumes, keeping finished budgets.
    """
    from mnist_search.cli.render import frontier_summary, progress, ship_lines
    from mnist_search.frontier import FrontierConfig, run_frontier, ship_rows, write_outputs
    from mnist_search.search.config import SearchConfig

    search = SearchConfig(
        space=space,
        protocol=_search_protocol(search_epochs, train_subset, val_size, dataset),
        storage=storage,
        seed=seed,
        pruner=pruner,
        warm_start=warm_start,
        startup=startup,
        workers=workers,
        heartbeat=heartbeat,
        run=run_settings(device, data_dir, amp, channels_last, compile_model, parallel),
        artifacts=artifacts,
        final=_final(final_seeds, final_top, final_augment, final_incumbent, final_teacher),
    )
    config = FrontierConfig(
        search=search,
        budgets=_budgets(budgets),
        timeout=timeout,
        out=out,
        study_prefix=study_prefix,
        target_accuracy=target_accuracy,
        confirm=confirm,
        ship=ship,
    )
    with progress(quiet):
        result = run_frontier(config)
    command = "mnist-search " + shlex.join(sys.argv[1:])
    echo([f"written: {path}" for path in write_outputs(result, command)])
    echo(frontier_summary(result))
    if config.ship is not None:
        echo(ship_lines(ship_rows(result, config.ship, command)))
    if result.interrupted:
        typer.echo("interrupted: finished budgets are kept; run the same command to resume")
        raise typer.Exit(130)


def _final(seeds, top, augment, incumbent, teacher: Path | None, epochs: str = "auto"):
    """The final stage's settings from its options (``epochs``: 'auto' or a number)."""
    from mnist_search.search.config import FinalSettings

    return FinalSettings(
        seeds=seeds,
        top=top,
        augment=augment,
        incumbent=incumbent,
        teacher=None if teacher is None else str(teacher),
        epochs=_epochs_or_auto(epochs),
    )
