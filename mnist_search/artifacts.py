"""Trained weights as Optuna artifacts: stored per completed trial, rebuilt from the trial's spec."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore, download_artifact, upload_artifact
from optuna.trial import FrozenTrial, TrialState

from .model import Net, build_model
from .spec import ArchSpec

DEFAULT_ARTIFACTS = Path("studies") / "artifacts"
WEIGHTS_ATTR = "weights_artifact_id"


class ArtifactError(ValueError):
    pass


def artifact_store(path: str | Path | None = None) -> FileSystemArtifactStore:
    folder = Path(path) if path else DEFAULT_ARTIFACTS
    folder.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(folder))


def save_weights(trial: optuna.Trial, model: torch.nn.Module,
                 store: FileSystemArtifactStore) -> str:
    with tempfile.TemporaryDirectory(prefix="mnist-search-") as tmp:
        path = os.path.join(tmp, f"trial-{trial.number}-state_dict.pt")
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
        artifact_id = upload_artifact(artifact_store=store, file_path=path, study_or_trial=trial,
                                      mimetype="application/octet-stream")
    trial.set_user_attr(WEIGHTS_ATTR, artifact_id)
    return artifact_id


def load_weights(trial: FrozenTrial, store: FileSystemArtifactStore) -> dict[str, torch.Tensor]:
    artifact_id = trial.user_attrs.get(WEIGHTS_ATTR)
    if not artifact_id:
        raise ArtifactError(f"trial {trial.number} has no stored weights")
    with tempfile.TemporaryDirectory(prefix="mnist-search-") as tmp:
        path = os.path.join(tmp, "state_dict.pt")
        try:
            download_artifact(artifact_store=store, file_path=path, artifact_id=artifact_id)
        except Exception as e:
            raise ArtifactError(f"trial {trial.number}: weights {artifact_id} not found in the "
                                f"artifact store ({type(e).__name__}); pass --artifacts") from None
        # weights_only: a state_dict is tensors only, and nothing else may be unpickled.
        return torch.load(path, map_location="cpu", weights_only=True)


def rebuild(trial: FrozenTrial, store: FileSystemArtifactStore) -> Net:
    """The trained net of a completed trial: its spec, built, with its stored weights."""
    spec = ArchSpec.from_dict(trial.user_attrs["spec"])
    model = build_model(spec)
    model.load_state_dict(load_weights(trial, store))
    return model.eval()


def pick_trial(study: optuna.Study, which: str) -> FrozenTrial:
    """'best' (highest validation accuracy, fewest parameters on ties) or a trial number."""
    from .study import top_trials

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
    trial = trials[number]
    if trial.state != TrialState.COMPLETE:
        raise ArtifactError(f"--trial {number} is {trial.state.name}; only a COMPLETE trial has "
                            "trained weights")
    return trial
