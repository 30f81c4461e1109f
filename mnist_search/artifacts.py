"""Trained weights as Optuna artifacts: stored per completed trial, rebuilt from the trial's spec."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore, download_artifact, upload_artifact

from .errors import UsageError
from .model import Net, build_model
from .records import TrialRecord, top_trials
from .spec import ArchSpec
from .storage import STUDIES

DEFAULT_ARTIFACTS = STUDIES / "artifacts"


class ArtifactError(UsageError):
    pass


def artifact_store(path: str | Path | None = None) -> FileSystemArtifactStore:
    folder = Path(path) if path else DEFAULT_ARTIFACTS
    folder.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(folder))


def save_weights(trial: optuna.Trial, model: torch.nn.Module,
                 store: FileSystemArtifactStore) -> str:
    """Upload the model's state_dict as an artifact of the trial; returns its id."""
    with tempfile.TemporaryDirectory(prefix="mnist-search-") as tmp:
        path = os.path.join(tmp, f"trial-{trial.number}-state_dict.pt")
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
        return upload_artifact(artifact_store=store, file_path=path, study_or_trial=trial,
                               mimetype="application/octet-stream")


def load_weights(record: TrialRecord, store: FileSystemArtifactStore) -> dict[str, torch.Tensor]:
    artifact_id = record.weights_artifact_id
    if not artifact_id:
        raise ArtifactError(f"trial {record.number} has no stored weights")
    with tempfile.TemporaryDirectory(prefix="mnist-search-") as tmp:
        path = os.path.join(tmp, "state_dict.pt")
        try:
            download_artifact(artifact_store=store, file_path=path, artifact_id=artifact_id)
        except Exception as e:
            raise ArtifactError(f"trial {record.number}: weights {artifact_id} not found in the "
                                f"artifact store ({type(e).__name__}); pass --artifacts") from None
        # weights_only: a state_dict is tensors only, and nothing else may be unpickled.
        return torch.load(path, map_location="cpu", weights_only=True)


def rebuild(record: TrialRecord, store: FileSystemArtifactStore) -> Net:
    """The trained net of a completed trial: its spec, built, with its stored weights."""
    model = build_model(ArchSpec.from_dict(record.spec))
    model.load_state_dict(load_weights(record, store))
    return model.eval()


def pick_trial(study: optuna.Study, which: str) -> TrialRecord:
    """'best' (highest validation accuracy, fewest parameters on ties) or a trial number."""
    if which == "best":
        best = top_trials(study, 1)
        if not best:
            raise ArtifactError(f"study {study.study_name!r} has no complete trial yet")
        return best[0]
    try:
        number = int(which)
    except ValueError:
        raise ArtifactError(f"--trial {which!r}: give a trial number or 'best'") from None
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        raise ArtifactError(f"--trial {number}: study {study.study_name!r} has trials 0 to "
                            f"{len(trials) - 1}")
    record = TrialRecord.of(trials[number])
    if record.state != "COMPLETE":
        raise ArtifactError(f"--trial {number} is {record.state}; only a COMPLETE trial has "
                            "trained weights")
    return record
