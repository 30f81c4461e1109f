"""Export a trained trial: weights, a TorchScript file, its spec as JSON, and a layer summary."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from optuna.artifacts import FileSystemArtifactStore

from .artifacts import DEFAULT_ARTIFACTS, ArtifactError, artifact_store, pick_trial, rebuild
from .data import Split, load_test
from .device import resolve_device
from .files import check_writable
from .records import TrialRecord
from .storage import default_storage, load_existing
from .spec import ArchSpec, count_params, describe, layer_summary
from .train import eval_batch, evaluate

FILES = ("state_dict.pt", "model.torchscript.pt", "spec.json", "summary.txt")


def summary_text(spec: ArchSpec) -> str:
    rows = layer_summary(spec)
    width = max(len(name) for name, _ in rows)
    lines = [f"{describe(spec)}", ""]
    lines += [f"{name:<{width}}: {n:>9,} params" for name, n in rows]
    lines += ["", f"{'total':<{width}}: {count_params(spec):>9,} params"]
    if spec.batchnorm:
        lines.append("(each Conv2d row includes its BatchNorm2d's weight and bias)")
    return "\n".join(lines) + "\n"


def export_trial(study_name: str, record: TrialRecord, store: FileSystemArtifactStore,
                 out: Path) -> list[Path]:
    model = rebuild(record, store)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in FILES]
    torch.save(model.state_dict(), paths[0])
    with warnings.catch_warnings():
        # TorchScript is deprecated in favour of torch.export, but it is still the one file
        # format that loads with plain torch.jit.load and no Python class definitions.
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(model).save(str(paths[1]))
    paths[2].write_text(json.dumps({
        "spec": record.spec, "training": record.training, "n_params": record.n_params,
        "architecture": record.architecture, "study": study_name, "trial": record.number,
        "val_accuracy": record.val_accuracy, "test_accuracy": record.test_accuracy,
    }, indent=2) + "\n")
    paths[3].write_text(summary_text(ArchSpec.from_dict(record.spec)))
    return paths


def verify_export(out: Path, test: Split) -> float:
    """Test accuracy (%) of the exported TorchScript file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = torch.jit.load(str(out / FILES[1]), map_location=test.images.device)
    spec = ArchSpec.from_dict(json.loads((out / FILES[2]).read_text())["spec"])
    return evaluate(model, test, eval_batch(spec))


@dataclass
class ExportOutcome:
    record: TrialRecord  # the exported trial
    files: list[Path]
    test_accuracy: float | None = None  # of the exported file, when verified

    @property
    def matches(self) -> bool:
        """The exported file scores what the trial recorded."""
        return (self.test_accuracy is not None and self.record.test_accuracy is not None
                and abs(self.test_accuracy - self.record.test_accuracy) < 1e-9)


def export_study_trial(study_name: str, storage_url: str | None, which: str, out: str | Path, *,
                       artifacts: str | Path | None = None, verify_on: str | None = "cpu",
                       data_dir: str | Path | None = None) -> ExportOutcome:
    """Export trial ``which`` ('best' or a number) of a study that must exist; with
    ``verify_on`` (a device), evaluate the exported file on the test set."""
    check_writable("out", out, folder=True)
    study = load_existing(study_name, storage_url or default_storage(study_name))
    folder = Path(artifacts) if artifacts else DEFAULT_ARTIFACTS
    if not folder.is_dir():
        raise ArtifactError(f"artifact folder {folder} does not exist; pass --artifacts")
    record = pick_trial(study, which)
    out = Path(out)
    done = ExportOutcome(record, export_trial(study_name, record, artifact_store(folder), out))
    if verify_on is not None:
        done.test_accuracy = verify_export(out, load_test(data_dir, resolve_device(verify_on)))
    return done
