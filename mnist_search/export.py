"""Export a trained trial: weights, a TorchScript file, its spec as JSON, and a layer summary."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import FrozenTrial

from .artifacts import rebuild
from .data import Split
from .spec import count_params, describe, layer_summary
from .train import evaluate

FILES = ("state_dict.pt", "model.torchscript.pt", "spec.json", "summary.txt")


def summary_text(trial: FrozenTrial) -> str:
    from .spec import ArchSpec

    spec = ArchSpec.from_dict(trial.user_attrs["spec"])
    rows = layer_summary(spec)
    width = max(len(name) for name, _ in rows)
    lines = [f"{describe(spec)}", ""]
    lines += [f"{name:<{width}}: {n:>9,} params" for name, n in rows]
    lines += ["", f"{'total':<{width}}: {count_params(spec):>9,} params"]
    if spec.batchnorm:
        lines.append("(each Conv2d row includes its BatchNorm2d's weight and bias)")
    return "\n".join(lines) + "\n"


def export_trial(study: optuna.Study, trial: FrozenTrial, store: FileSystemArtifactStore,
                 out: Path) -> list[Path]:
    model = rebuild(trial, store)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in FILES]
    torch.save(model.state_dict(), paths[0])
    with warnings.catch_warnings():
        # TorchScript is deprecated in favour of torch.export, but it is still the one file
        # format that loads with plain torch.jit.load and no Python class definitions.
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(model).save(str(paths[1]))
    a = trial.user_attrs
    paths[2].write_text(json.dumps({
        "spec": a["spec"], "training": a.get("training"), "n_params": a["n_params"],
        "architecture": a.get("architecture"), "study": study.study_name, "trial": trial.number,
        "val_accuracy": trial.value, "test_accuracy": a.get("test_accuracy"),
    }, indent=2) + "\n")
    paths[3].write_text(summary_text(trial))
    return paths


def verify_export(out: Path, test: Split) -> float:
    """Test accuracy (%) of the exported TorchScript file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = torch.jit.load(str(out / FILES[1]), map_location=test.images.device)
    return evaluate(model, test)
