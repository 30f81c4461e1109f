"""The ``mnist-search`` command. Each command declares its options, makes one call into the
library and renders the result; a UsageError from the library becomes one line and exit status 2
here, at the edge (``OneLineErrors``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from mnist_search.cli.options import (
    Amp,
    Artifacts,
    ChannelsLast,
    Compile,
    DataDir,
    Device,
    Epochs,
    Json,
    Parallel,
    Quiet,
    Storage,
    StudyName,
    TrainSubset,
    ValSize,
    run_settings,
)
from mnist_search.cli.parsing import OneLineErrors
from mnist_search.cli.search_cmds import echo, frontier, optimize
from mnist_search.errors import UsageError
from mnist_search.search.progress import setup_logging

app = typer.Typer(
    cls=OneLineErrors,
    add_completion=False,
    no_args_is_help=True,
    help="Find the best small CNN for MNIST under a hard parameter budget.",
)
log = logging.getLogger("mnist_search")


def _version(value: bool) -> None:
    if value:
        from mnist_search import __version__

        typer.echo(f"mnist-search {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Find the best small CNN for MNIST under a hard parameter budget."""


app.command()(optimize)
app.command()(frontier)


@app.command("train")
def train_cmd(
    spec: Annotated[
        Optional[Path],
        typer.Option(
            help='JSON file: a spec, or {"spec": ..., "training": ...}.', show_default=False
        ),
    ] = None,
    experiment: Annotated[
        Optional[int],
        typer.Option(
            help="A documented experiment (1-6), under the documented protocol.", show_default=False
        ),
    ] = None,
    epochs: Annotated[
        Optional[int],
        typer.Option(
            help="Training epochs; default: the spec file's 'epochs', else 1.", show_default=False
        ),
    ] = None,
    seed: Annotated[
        Optional[int],
        typer.Option(
            help="Seed for initialisation and batch order; default: the spec file's, else 0.",
            show_default=False,
        ),
    ] = None,
    seeds: Annotated[
        int,
        typer.Option(help="Train this many times, seeds --seed, --seed+1, ...; report mean ± std."),
    ] = 1,
    teacher: Annotated[
        Optional[Path],
        typer.Option(
            help="A spec file of a net to learn from as well as the labels (knowledge "
            "distillation): trained first on the same data with its own recipe, epochs and seed, "
            "never judged on test. Default: the spec file's teacher, if it has one.",
            show_default=False,
        ),
    ] = None,
    distill: Annotated[
        float,
        typer.Option(help="With --teacher: the weight of the teacher's outputs in the loss, 0-1."),
    ] = 0.5,  # DISTILL and TEMPERATURE of training.loop (a test checks), not imported: torch
    temperature: Annotated[
        float, typer.Option(help="With --teacher: the temperature that softens its outputs.")
    ] = 4.0,
    device: Device = "auto",
    dataset: Annotated[
        Optional[str],
        typer.Option(
            metavar="mnist|fashion-mnist|idx",
            help="The data to train on: mnist, fashion-mnist or idx (an own folder, with "
            "--data-dir); default: the spec file's, else mnist.",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDir = None,
    train_subset: Annotated[
        Optional[int],
        typer.Option(
            help="Train on only the first N training images; default: the spec file's, else all "
            "55,000.",
            show_default=False,
        ),
    ] = None,
    val_size: Annotated[
        Optional[int],
        typer.Option(
            help="Training images held out for validation; default: the spec file's, else 5000.",
            show_default=False,
        ),
    ] = None,
    amp: Amp = None,
    channels_last: ChannelsLast = None,
    compile_model: Compile = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    quiet: Quiet = False,
) -> None:
    """Train one spec (--spec) or one documented experiment (--experiment) and report it.

    A spec file written by 'optimize --final-seeds' holds the net, its training settings and
    epochs, so 'train --spec FILE --seeds 3' reproduces its result."""
    from mnist_search.cli.render import fields_table
    from mnist_search.training.retrain import SpecFile, retrain

    setup_logging(quiet=quiet)
    if spec is not None and experiment is None:
        net = SpecFile.read(spec)
    elif experiment is not None and spec is None:
        net = SpecFile.experiment(experiment)
    else:
        raise UsageError("give exactly one of --spec FILE or --experiment N")
    if teacher is not None:
        net = net.taught_by(SpecFile.read(teacher, "teacher"), distill, temperature)
    out = retrain(
        net,
        protocol=net.protocol_for(epochs, train_subset, val_size, dataset),
        seed=seed,
        seeds=seeds,
        run=run_settings(device, data_dir, amp, channels_last, compile_model),
    ).to_dict()
    if as_json:
        typer.echo(json.dumps(out))
    else:
        echo(fields_table(out))


@app.command()
def replay(
    experiments_: Annotated[
        str, typer.Option("--experiments", help="Comma-separated experiment ids.")
    ] = "1,2,3,4,5,6",
    seeds: Annotated[int, typer.Option(help="Runs per experiment (seeds 0..K-1).")] = 3,
    epochs: Epochs = 1,
    device: Device = "auto",
    study_name: Annotated[
        str, typer.Option(help="Study to hold the replayed trials.")
    ] = "documented-experiments",
    storage: Storage = None,
    data_dir: DataDir = None,
    train_subset: TrainSubset = None,
    val_size: ValSize = 5000,
    artifacts: Artifacts = None,
    parallel: Parallel = 1,
    amp: Amp = None,
    channels_last: ChannelsLast = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    quiet: Quiet = False,
) -> None:
    """Re-run the write-up's experiments as fixed trials; show documented vs measured."""
    from mnist_search.cli.render import progress, replay_table
    from mnist_search.replay.run import ReplayConfig, run_replay
    from mnist_search.training.protocol import Protocol

    config = ReplayConfig(
        experiments=experiments_,
        seeds=seeds,
        protocol=Protocol(epochs=epochs, train_subset=train_subset, val_size=val_size),
        study_name=study_name,
        storage=storage,
        run=run_settings(device, data_dir, amp, channels_last, parallel=parallel),
        artifacts=artifacts,
    )
    with progress(quiet):
        out = run_replay(config)
    if as_json:
        typer.echo(json.dumps(out.to_json(), indent=2))
    else:
        echo(replay_table(out.rows, out.findings))


@app.command()
def experiments(as_json: Json = False) -> None:
    """List the six documented experiments with their documented and true parameter counts."""
    from mnist_search.catalog.experiments import documented_experiments
    from mnist_search.cli.render import experiments_table

    rows = [e.to_dict() for e in documented_experiments()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        echo(experiments_table(rows))


@app.command()
def report(
    study_name: StudyName = "budget-25000",
    storage: Storage = None,
    replay_study: Annotated[
        str, typer.Option(help="Study of replayed experiments to place on the plot, if it exists.")
    ] = "documented-experiments",
    replay_storage: Annotated[
        Optional[str], typer.Option(help="Its storage URL; default: --storage.", show_default=False)
    ] = None,
    out: Annotated[Path, typer.Option(help="HTML file to write.")] = Path("report.html"),
) -> None:
    """Write one self-contained HTML report of a study (plots need no network)."""
    from mnist_search.outputs.report import report_study

    setup_logging()
    data = report_study(study_name, storage, out, replay_study, replay_storage)
    typer.echo(
        f"wrote {out} ({len(data['points'])} complete trials, "
        f"{len(data['front'])} on the Pareto front, "
        f"{sum(1 for d in data['documented'] if d['measured_test'] is not None)} "
        "replayed experiments)"
    )


@app.command()
def export(
    out: Annotated[Path, typer.Option(help="Folder to write the model files into.")],
    trial: Annotated[str, typer.Option(help="Trial number, or 'best'.")] = "best",
    study_name: StudyName = "budget-25000",
    storage: Storage = None,
    artifacts: Artifacts = None,
    verify: Annotated[
        bool,
        typer.Option(
            help="Evaluate each exported model on the raw test images and compare with the trial."
        ),
    ] = True,
    data_dir: DataDir = None,
) -> None:
    """Export a trained trial: a torch.export program and an ONNX model that take the study's
    raw images (MNIST's, or those of its --dataset), the state_dict, spec JSON (retrains with 'train --spec') and a layer summary."""
    from mnist_search.cli.render import export_lines
    from mnist_search.outputs.export import export_study_trial

    setup_logging()
    done = export_study_trial(
        study_name, storage, trial, out, artifacts=artifacts, verify=verify, data_dir=data_dir
    )
    echo(export_lines(done))
    if done.test_accuracy and not done.matches:
        raise typer.Exit(1)


@app.command()
def dashboard(
    storage: Storage = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    host: Annotated[
        str,
        typer.Option(
            help="Address to bind; anything but 127.0.0.1 exposes the dashboard to the network."
        ),
    ] = "127.0.0.1",
    artifacts: Artifacts = None,
) -> None:
    """Start optuna-dashboard on the study's storage, with its trained weights attached."""
    from mnist_search.outputs.dashboard import serve

    setup_logging()
    serve(storage, port=port, host=host, artifacts=artifacts)


def main() -> None:
    from mnist_search.stopping import terminate_like_ctrl_c

    terminate_like_ctrl_c()
    app()


if __name__ == "__main__":
    main()
