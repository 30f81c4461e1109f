"""Trained weights as Optuna artifacts: stored per completed trial, rebuilt from the trial's spec."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore, download_artifact, upload_artifact
from optuna.trial import TrialState

from mnist_search.errors import UsageError
from mnist_search.net.model import Net, build_model
from mnist_search.net.spec import ArchSpec
from mnist_search.search.records import TrialRecord, top_trials
from mnist_search.search.storage import STUDIES

DEFAULT_ARTIFACTS = STUDIES / "artifacts"


class ArtifactError(UsageError):
    pass


def artifact_store(path: str | Path | None = None) -> FileSystemArtifactStore:
    folder = Path(path) if path else DEFAULT_ARTIFACTS
    folder.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(folder))


def save_weights(
    trial: optuna.Trial, model: torch.nn.Module, store: FileSystemArtifactStore
) -> str:
    """Upload the model's state_dict as an artifact of the trial; returns its id."""
    with tempfile.TemporaryDirectory(prefix="mnist-search-") as tmp:
        path = os.path.join(tmp, f"trial-{trial.number}-state_dict.pt")
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
        return upload_artifact(
            artifact_store=store,
            file_path=path,
            study_or_trial=trial,
            mimetype="application/octet-stream",
        )


# Optuna names artifacts by uuid4; anything else in a trial's attribute was not written here.
ARTIFACT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# The largest net a spec may describe has 20 million parameters: 80 MB of float32 weights.
WEIGHTS_BYTES = 100 << 20


def load_weights(record: TrialRecord, store: FileSystemArtifactStore) -> dict[str, torch.Tensor]:
    artifact_id = record.weights_artifact_id
    if not artifact_id:
        raise ArtifactError(f"trial {record.number} has no stored weights")
    if not isinstance(artifact_id, str) or not ARTIFACT_ID.fullmatch(artifact_id):
        raise ArtifactError(
            f"trial {record.number}: weights id {str(artifact_id)[:60]!r} is not an artifact id "
            "(a uuid); the study was not written by this tool"
        )
    with tempfile.TemporaryDirectory(prefix="mnist-search-") as tmp:
        path = os.path.join(tmp, "state_dict.pt")
        try:
            download_artifact(artifact_store=store, file_path=path, artifact_id=artifact_id)
        except Exception as e:
            raise ArtifactError(
                f"trial {record.number}: weights {artifact_id} not found in the "
                f"artifact store ({type(e).__name__}); pass --artifacts"
            ) from None
        size = os.path.getsize(path)
        if size > WEIGHTS_BYTES:
            raise ArtifactError(
                f"trial {record.number}: weights {artifact_id} are {size:,} bytes, more than any "
                "net a spec can describe"
            )
        try:
            # weights_only: a state_dict is tensors only, and nothing else may be unpickled.
            weights = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a damaged or foreign file: any unpickling error
            raise ArtifactError(
                f"trial {record.number}: weights {artifact_id} are unreadable "
                f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"
            ) from None
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise ArtifactError(f"trial {record.number}: weights {artifact_id} are not a state_dict")
    return weights


def rebuild(record: TrialRecord, store: FileSystemArtifactStore) -> Net:
    """The trained net of a completed trial: its spec, built, with its stored weights."""
    model = build_model(ArchSpec.from_dict(record.spec))
    try:
        model.load_state_dict(load_weights(record, store))
    except RuntimeError as e:  # names or shapes that are not this spec's
        raise ArtifactError(
            f"trial {record.number}: stored weights do not fit its spec "
            f"({str(e).splitlines()[0][:160]})"
        ) from None
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
        raise ArtifactError(
            f"--trial {number}: study {study.study_name!r} has trials 0 to {len(trials) - 1}"
        )
    record = TrialRecord.of(trials[number])
    if record.state != TrialState.COMPLETE:
        raise ArtifactError(
            f"--trial {number} is {record.state.name}; only a COMPLETE trial has trained weights"
        )
    return record
