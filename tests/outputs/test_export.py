"""`export`: the exported programs take raw images and reproduce the recorded accuracy."""

import json
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from mnist_search.cli.app import app

runner = CliRunner()

TINY = ["--train-subset", "400", "--val-size", "1000", "--device", "cpu"]


def test_export_best_reproduces_recorded_accuracy(study, in_study_dir, data_dir):
    r = runner.invoke(
        app,
        ["export", "--study-name", "budget-20000", "--out", "best", "--data-dir", str(data_dir)],
    )
    assert r.exit_code == 0, r.output
    best = max(
        (t for t in study.trials if t.value is not None),
        key=lambda t: (t.value, -t.user_attrs["n_params"]),
    )
    assert f"recorded {best.user_attrs['test_accuracy']:.2f}%" in r.stdout
    assert "MISMATCH" not in r.stdout
    out = in_study_dir / "best"
    spec = json.loads((out / "spec.json").read_text())
    assert spec["trial"] == best.number and spec["n_params"] == best.user_attrs["n_params"]
    state = torch.load(out / "state_dict.pt", weights_only=True)
    assert (
        sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k)
        == best.user_attrs["n_params"]
    )
    summary = (out / "summary.txt").read_text()
    assert "Conv2d-1:" in summary and f"{best.user_attrs['n_params']:,} params" in summary
    # The exported spec trains again through `train --spec`.
    again = runner.invoke(
        app,
        ["train", "--spec", str(out / "spec.json"), "--json", "--data-dir", str(data_dir), *TINY],
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["n_params"] == best.user_attrs["n_params"]


LOAD_WITHOUT_THE_PACKAGE = """
import gzip, json, os, sys
import numpy as np, onnxruntime, torch
folder, data = sys.argv[1], sys.argv[2]


def idx(name):
    path = os.path.join(data, name)
    return gzip.open(path + ".gz").read() if os.path.exists(path + ".gz") else open(path, "rb").read()


images = np.frombuffer(idx("t10k-images-idx3-ubyte")[16:], np.uint8).reshape(-1, 1, 28, 28)
labels = np.frombuffer(idx("t10k-labels-idx1-ubyte")[8:], np.uint8)
program = torch.export.load(folder + "/model.pt2").module()
onnx = onnxruntime.InferenceSession(folder + "/model.onnx", providers=["CPUExecutionProvider"])
got = {"pt2": 0, "onnx": 0}
for i in range(0, len(labels), 500):
    x = images[i:i + 500]
    with torch.inference_mode():
        got["pt2"] += int((program(torch.from_numpy(x.copy())).argmax(1).numpy()
                           == labels[i:i + 500]).sum())
    got["onnx"] += int((onnx.run(None, {"images": x})[0].argmax(1) == labels[i:i + 500]).sum())
assert not any(m.startswith("mnist_search") for m in sys.modules)
print(json.dumps({k: 100.0 * v / len(labels) for k, v in got.items()}))
"""


def test_exported_models_load_anywhere_and_take_raw_images(in_study_dir, data_dir):
    """model.pt2 and model.onnx, loaded in a fresh process without mnist_search, fed the raw
    uint8 test images, give the trial's recorded test accuracy."""
    r = runner.invoke(
        app,
        [
            "export",
            "--study-name",
            "budget-20000",
            "--out",
            "anywhere",
            "--data-dir",
            str(data_dir),
        ],
    )
    assert r.exit_code == 0, r.output
    spec = json.loads((in_study_dir / "anywhere" / "spec.json").read_text())
    assert "uint8" in spec["model"]["input"] and "log-probabilities" in spec["model"]["output"]
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_WITHOUT_THE_PACKAGE,
            str(in_study_dir / "anywhere"),
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["pt2"] == pytest.approx(spec["test_accuracy"], abs=1e-9)
    assert got["onnx"] == pytest.approx(spec["test_accuracy"], abs=0.02)


def test_exported_spec_retrains_to_the_trial_exactly(study, in_study_dir, data_dir):
    """spec.json records recipe, length, seed and data split: `train --spec` with no other
    option gives the trial's numbers again, exactly, on the CPU."""
    r = runner.invoke(
        app, ["export", "--study-name", "budget-20000", "--out", "again", "--no-verify"]
    )
    assert r.exit_code == 0, r.output
    spec = json.loads((in_study_dir / "again" / "spec.json").read_text())
    assert spec["protocol"] == {
        "train_subset": 400,
        "val_size": 1000,
        "split_seed": 0,
        "dataset": "mnist",
    }
    trial = study.trials[spec["trial"]]
    assert spec["seed"] == trial.user_attrs["seed"] and spec["epochs"] == 1
    again = runner.invoke(
        app,
        [
            "train",
            "--spec",
            "again/spec.json",
            "--json",
            "--data-dir",
            str(data_dir),
            "--device",
            "cpu",
        ],
    )
    assert again.exit_code == 0, again.output
    out = json.loads(again.stdout)
    assert out["val_accuracy"] == trial.value
    assert out["test_accuracy"] == trial.user_attrs["test_accuracy"]


def test_export_refuses_a_pruned_or_missing_trial(in_study_dir):
    r = runner.invoke(
        app, ["export", "--study-name", "budget-20000", "--trial", "99", "--out", "x"]
    )
    assert r.exit_code == 2 and "--trial 99: study 'budget-20000' has trials 0 to" in r.stderr
    r = runner.invoke(app, ["export", "--study-name", "nope", "--out", "x"])
    assert (
        r.exit_code == 2
        and "no study named 'nope' in sqlite:///studies/mnist-search.db" in r.stderr
    )
    r = runner.invoke(app, ["export", "--storage", "sqlite:///studies/nope.db", "--out", "x"])
    assert r.exit_code == 2 and "no study database at studies/nope.db" in r.stderr
    assert not (in_study_dir / "x").exists()
