"""Export a trained trial as files anyone can use: a torch.export program and an ONNX model that
take the dataset's images as they come (its normalisation inside), the state_dict, the spec as JSON (which
`train --spec` retrains to the same numbers) and a per-layer summary."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from optuna.artifacts import FileSystemArtifactStore
from torch import nn

from mnist_search.data.dataset import Dataset
from mnist_search.files import check_writable
from mnist_search.net.spec import (
    ArchSpec,
    conv_shapes,
    count_params,
    describe,
    layer_summary,
    multiply_adds,
)
from mnist_search.search.artifacts import (
    DEFAULT_ARTIFACTS,
    ArtifactError,
    artifact_store,
    pick_trial,
    rebuild,
)
from mnist_search.search.records import TrialRecord
from mnist_search.search.storage import default_storage, load_existing
from mnist_search.search.study import StudyAttrs
from mnist_search.training.loop import eval_batch
from mnist_search.training.protocol import Protocol

log = logging.getLogger("mnist_search")

FILES = {
    "weights": "state_dict.pt",
    "program": "model.pt2",
    "onnx": "model.onnx",
    "spec": "spec.json",
    "summary": "summary.txt",
}


def contract(data: Dataset) -> dict[str, str]:
    """How to call the exported model on ``data``'s images."""
    return {
        "dataset": data.name,
        "input": f"{data.name} images as they come: N×1×28×28 (or N×28×28) uint8 pixels 0..255, "
        "as in the IDX files; model.pt2 and model.onnx take uint8, the Python module float "
        "0..1 too",
        "output": f"N×{data.classes} log-probabilities (log-softmax): argmax is the class, exp() "
        "gives the probabilities",
        "normalisation": f"inside the model: (x/255 - {data.mean}) / {data.std}",
    }


class Deployable(nn.Module):
    """A trained net as anyone can use it: images as they come in (the dataset's normalisation
    inside), log-probabilities of its classes out."""

    def __init__(self, net: nn.Module, mean: float, std: float):
        super().__init__()
        self.net, self.mean, self.std = net, mean, std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        x = x.reshape(x.shape[0], 1, 28, 28)
        return self.net((x - self.mean) / self.std)


def summary_text(spec: ArchSpec, data: Dataset) -> str:
    """Per layer: parameters, output shape and multiply-adds per image."""
    rows = layer_summary(spec)
    macs = dict(multiply_adds(spec))
    shapes = [f"{s.out_channels}×{s.size_out}×{s.size_out}" for s in conv_shapes(spec)]
    shapes += [str(w) for w in [*spec.hidden, spec.num_classes]]
    width = max(len(name) for name, _ in rows) + 1
    lines = [
        f"{describe(spec)}",
        "",
        f"{'layer':<{width}} {'parameters':>16}  {'output':>10}  {'multiply-adds':>13}",
    ]
    lines += [
        f"{name + ':':<{width}} {n:>9,} params  {shape:>10}  {macs[name]:>13,}"
        for (name, n), shape in zip(rows, shapes)
    ]
    lines += [
        "",
        f"{'total:':<{width}} {count_params(spec):>9,} params  {'':>10}  {sum(macs.values()):>13,}",
    ]
    if spec.batchnorm:
        lines.append("(each conv row includes its BatchNorm2d's weight and bias)")
    lines += ["", *(f"{k}: {v}" for k, v in contract(data).items())]
    return "\n".join(lines) + "\n"


def export_trial(
    study_name: str,
    record: TrialRecord,
    store: FileSystemArtifactStore,
    out: Path,
    protocol: Protocol,
    data: Dataset,
) -> list[Path]:
    """Write the trial's files into ``out``; ONNX only where the ``onnx`` extra is installed."""
    net = rebuild(record, store)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / name for k, name in FILES.items()}
    torch.save(net.state_dict(), paths["weights"])
    model = Deployable(net, data.mean, data.std).eval()
    example = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    batch = {"images": {0: torch.export.Dim("batch", min=1, max=65536)}}
    torch.export.save(
        torch.export.export(model, (example,), dynamic_shapes=batch), paths["program"]
    )
    if importlib.util.find_spec("onnxscript") is None:  # torch's ONNX exporter needs it
        log.info("ONNX not written: pip install 'mnist-search[onnx]' adds it")
        del paths["onnx"]
    else:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(paths["onnx"]),
                input_names=["images"],
                output_names=["log_probs"],
                dynamic_shapes=batch,
                dynamo=True,
            )
    # Everything `mnist-search train --spec` needs to train this net again to the same numbers:
    # recipe, length, seed and the data split; and how to call the exported model.
    paths["spec"].write_text(
        json.dumps(
            {
                "spec": record.spec,
                "training": record.training,
                "epochs": record.epochs,
                "seed": record.seed,
                "protocol": protocol.data_split(),
                "n_params": record.n_params,
                "architecture": record.architecture,
                "study": study_name,
                "trial": record.number,
                "val_accuracy": record.val_accuracy,
                "test_accuracy": record.test_accuracy,
                "model": contract(data),
            },
            indent=2,
        )
        + "\n"
    )
    paths["summary"].write_text(summary_text(ArchSpec.from_dict(record.spec), data))
    return list(paths.values())


def accuracy(predict, images: torch.Tensor, labels: torch.Tensor, batch: int) -> float:
    """Test accuracy (%) of ``predict`` (uint8 N×1×28×28 → N×10 scores), in batches."""
    correct = 0
    for i in range(0, len(labels), batch):
        scores = predict(images[i : i + batch])
        correct += int((torch.as_tensor(scores).argmax(1) == labels[i : i + batch]).sum())
    return 100.0 * correct / len(labels)


def verify_export(out: Path, data: Dataset) -> dict[str, float]:
    """Test accuracy (%) of each exported file, fed the raw uint8 test images."""
    images, labels = data.test_images.unsqueeze(1), data.test_labels
    spec = ArchSpec.from_dict(json.loads((out / FILES["spec"]).read_text())["spec"])
    batch = eval_batch(spec)
    program = torch.export.load(out / FILES["program"]).module()
    with torch.inference_mode():
        got = {FILES["program"]: accuracy(program, images, labels, batch)}
    if (out / FILES["onnx"]).is_file():
        import onnxruntime

        session = onnxruntime.InferenceSession(
            str(out / FILES["onnx"]), providers=["CPUExecutionProvider"]
        )
        got[FILES["onnx"]] = accuracy(
            lambda x: session.run(None, {"images": x.numpy()})[0], images, labels, batch
        )
    return got


@dataclass
class ExportOutcome:
    record: TrialRecord  # the exported trial
    files: list[Path]
    test_accuracy: dict[str, float] = field(default_factory=dict)  # per file, when verified
    classes: int = 10  # the outputs: the dataset's classes

    @property
    def matches(self) -> bool:
        """Each exported model scores what the trial recorded (ONNX Runtime's arithmetic may
        flip an image whose two best classes are a rounding error apart: 0.02 points)."""
        tol = {FILES["program"]: 1e-9, FILES["onnx"]: 0.02}
        return (
            bool(self.test_accuracy)
            and self.record.test_accuracy is not None
            and all(
                abs(acc - self.record.test_accuracy) <= tol[name]
                for name, acc in self.test_accuracy.items()
            )
        )


def export_study_trial(
    study_name: str,
    storage_url: str | None,
    which: str,
    out: str | Path,
    *,
    artifacts: str | Path | None = None,
    verify: bool = True,
    data_dir: str | Path | None = None,
) -> ExportOutcome:
    """Export trial ``which`` ('best' or a number) of a study that must exist; with ``verify``,
    evaluate each exported model on the raw test images (on the CPU)."""
    check_writable("out", out, folder=True)
    study = load_existing(study_name, storage_url or default_storage())
    folder = Path(artifacts) if artifacts else DEFAULT_ARTIFACTS
    if not folder.is_dir():
        raise ArtifactError(f"artifact folder {folder} does not exist; pass --artifacts")
    record = pick_trial(study, which)
    out = Path(out)
    protocol = StudyAttrs.of(study).protocol
    # The study's data, checked (an own folder against the fingerprint the study recorded):
    # its normalisation goes inside the model, its test images verify it.
    data = protocol.load(data_dir)
    done = ExportOutcome(
        record,
        export_trial(study_name, record, artifact_store(folder), out, protocol, data),
        classes=data.classes,
    )
    if verify:
        done.test_accuracy = verify_export(out, data)
    return done
