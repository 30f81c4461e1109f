"""Options that several commands share, declared once: each with its type, default and one-line
help (the help is also what docs/cli.md shows)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mnist_search.errors import check_range

DataDir = Annotated[
    Optional[Path],
    typer.Option(
        help="Folder with the dataset's four IDX files (.gz or raw); default for mnist: "
        "$MNIST_SEARCH_DATA, the cache, then download; for fashion-mnist: the cache, the system "
        "copy, then download; needed for idx.",
        show_default=False,
    ),
]
DatasetName = Annotated[
    str,
    typer.Option(
        "--dataset",
        metavar="mnist|fashion-mnist|idx",
        help="mnist, fashion-mnist, or idx: your own folder of the four IDX files (28x28 "
        "grayscale, integer labels), given with --data-dir.",
    ),
]
Device = Annotated[
    str, typer.Option(metavar="auto|cpu|cuda|cuda:N|mps", help="auto, cpu, cuda, cuda:N or mps.")
]
Epochs = Annotated[int, typer.Option(help="Training epochs per candidate.")]
ValSize = Annotated[int, typer.Option(help="Training images held out for validation.")]
Parallel = Annotated[
    int,
    typer.Option(help="Train K same-shape candidates together in one fused step (pays on a GPU)."),
]
Amp = Annotated[
    Optional[bool],
    typer.Option("--amp/--no-amp", help="bf16 autocast; default on for CUDA.", show_default=False),
]
ChannelsLast = Annotated[
    Optional[bool],
    typer.Option(
        "--channels-last/--no-channels-last",
        help="channels_last memory format; default on for CUDA.",
        show_default=False,
    ),
]
Compile = Annotated[
    bool,
    typer.Option(
        "--compile/--no-compile", help="torch.compile each model (pays only for long trials)."
    ),
]
Storage = Annotated[
    Optional[str],
    typer.Option(
        envvar="MNIST_SEARCH_STORAGE",
        show_envvar=False,
        show_default=False,
        help="Optuna storage URL (or $MNIST_SEARCH_STORAGE, to keep a password off the command "
        "line); default sqlite:///studies/mnist-search.db, which holds every study.",
    ),
]
TrainSubset = Annotated[
    Optional[int],
    typer.Option(
        help="Train on only the first N training images (quick runs); default: all 55,000.",
        show_default=False,
    ),
]
Artifacts = Annotated[
    Optional[Path],
    typer.Option(help="Folder of trained weights; default studies/artifacts.", show_default=False),
]
StudyName = Annotated[str, typer.Option(help="Study to read.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines; results only.")]
FinalAugment = Annotated[
    str,
    typer.Option(
        metavar="own|none|small|medium",
        help="Retrain every finalist with this augmentation, or 'own': each with its trial's.",
    ),
]
FinalTeacher = Annotated[
    Optional[Path],
    typer.Option(
        help="A spec file of a larger net every final retraining also learns from (knowledge "
        "distillation, weight 0.5, temperature 4): trained once when the final stage starts, "
        "within the time limit; its spec is written into the chosen net's file.",
        show_default=False,
    ),
]
FinalIncumbent = Annotated[
    bool,
    typer.Option(
        help="Also retrain the best net the search started from (shipped, or from a smaller "
        "budget), finalist or not.",
    ),
]


def _rows(value: int) -> int:
    """Checked as the option is parsed, before anything is written."""
    check_range("top", value)
    return value


Top = Annotated[int, typer.Option(help="Rows in the final table (0: none).", callback=_rows)]


# The search options `optimize` and `frontier` both take.
SpaceName = Annotated[
    str,
    typer.Option(
        "--space",
        metavar="modern|tiny|plain",
        help="Search space: modern (BN, separable, residual, GAP), tiny (the published ≤1K nets' "
        "family: valid separable blocks, norm optional, LeakyReLU) or plain (the write-up's).",
    ),
]
Pruner = Annotated[
    str,
    typer.Option(
        metavar="rungs|median|hyperband|sha|none",
        help="rungs (judged at 1/16 and 1/4 epoch, the best third goes on), median, "
        "hyperband, sha (successive halving over epochs) or none.",
    ),
]
Startup = Annotated[
    int,
    typer.Option(
        help="Space-filling first sampled trials (nets filling 60-100% of the budget, "
        "trained with a recipe prior); 0: the sampler's random start."
    ),
]
Heartbeat = Annotated[
    int,
    typer.Option(
        help="Seconds between a running trial's heartbeats; a trial silent for 3 beats is "
        "failed and retried."
    ),
]


def run_settings(
    device: str,
    data_dir: Path | None,
    amp: bool | None = None,
    channels_last: bool | None = None,
    compile_model: bool = False,
    parallel: int = 1,
):
    """The run part every command takes, made from the options of the same names."""
    from mnist_search.training.settings import RunSettings

    return RunSettings(
        device=device,
        data_dir=data_dir,
        amp=amp,
        channels_last=channels_last,
        compile=compile_model,
        parallel=parallel,
    )
