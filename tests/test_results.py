"""Report, export and dashboard on a real (tiny) study with stored weights."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import fields

import optuna
import pytest
import torch
from typer.testing import CliRunner

from mnist_search.cli.app import app
from mnist_search.outputs.report_data import (
    accuracy_points,
    documented_points,
    learning_curves,
    pareto_front,
    report_data,
)
from mnist_search.replay.summary import ReplayRow
from mnist_search.stats import Stat

runner = CliRunner()
TINY = ["--train-subset", "400", "--val-size", "1000", "--device", "cpu"]


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory, data_dir):
    """A finished 5-trial study (weights stored) and a replayed Exp3, in one folder."""
    folder = tmp_path_factory.mktemp("results")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        r = runner.invoke(
            app,
            [
                "optimize",
                "--budget",
                "20000",
                "--n-trials",
                "5",
                "--seed",
                "2",
                "--data-dir",
                str(data_dir),
                *TINY,
            ],
        )
        assert r.exit_code == 0, r.output
        r = runner.invoke(
            app,
            ["replay", "--experiments", "3", "--seeds", "2", "--data-dir", str(data_dir), *TINY],
        )
        assert r.exit_code == 0, r.output
    finally:
        os.chdir(cwd)
    return folder


@pytest.fixture
def in_study_dir(study_dir, monkeypatch):
    monkeypatch.chdir(study_dir)
    return study_dir


def _study(folder):
    return optuna.load_study(
        study_name="budget-20000", storage=f"sqlite:///{folder}/studies/mnist-search.db"
    )


def test_pareto_front():
    pts = [
        {"n_params": n, "val": v}
        for n, v in [(100, 90.0), (200, 89.0), (300, 95.0), (300, 94.0), (400, 95.0), (500, 97.0)]
    ]
    assert [(p["n_params"], p["val"]) for p in pareto_front(pts)] == [
        (100, 90.0),
        (300, 95.0),
        (500, 97.0),
    ]
    assert pareto_front([]) == []


def test_documented_points_use_true_counts_and_replays():
    empty = {f.name: None for f in fields(ReplayRow)}
    row = empty | {"experiment": 3, "test_accuracy": Stat(93.0, 0.5, 3), "seeds": [0, 1, 2]}
    docs = documented_points([ReplayRow(**row)])
    by = {d["experiment"]: d for d in docs}
    assert by[1]["n_params"] == 480_176 and by[1]["documented_test"] == 91.73
    assert by[3]["measured_test"] == 93.0 and by[3]["seeds"] == 3
    assert by[5]["measured_test"] is None


def test_report_data_from_a_real_study(study_dir):
    study = _study(study_dir)
    data = report_data(study)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(data["points"]) == len(done) >= 1
    assert data["budget"] == 20000 and all(p["n_params"] <= 20000 for p in data["points"])
    assert data["front"][-1]["val"] == max(p["val"] for p in data["points"])
    curves = learning_curves(study)
    assert {c["state"] for c in curves} <= {"COMPLETE", "PRUNED"}
    assert all(len(c["steps"]) == len(c["values"]) >= 1 for c in curves)
    assert accuracy_points(study) == data["points"]


def test_report_html(in_study_dir):
    r = runner.invoke(app, ["report", "--study-name", "budget-20000", "--out", "r.html"])
    assert r.exit_code == 0, r.output
    assert "1 replayed experiments" in r.stdout
    text = (in_study_dir / "r.html").read_text()
    for fig in ("accuracy", "history", "importances", "curves"):
        assert f'id="plot-{fig}"' in text
    assert "Pareto front" in text and "budget 20,000" in text and "Exp1" in text
    # Self-contained: plotly.js is inline and nothing is fetched.
    assert "<script src=" not in text and len(text) > 3_000_000


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


@pytest.mark.skipif(not _chromium(), reason="chromium not installed (.ci/run installs it)")
def test_report_draws_in_a_browser(in_study_dir, tmp_path):
    runner.invoke(app, ["report", "--study-name", "budget-20000", "--out", "r.html"])
    url = (in_study_dir / "r.html").as_uri()
    common = [
        _chromium(),
        *CHROME_FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=15000",
    ]
    dom = subprocess.run(
        [*common, "--dump-dom", url], capture_output=True, text=True, timeout=120
    ).stdout
    # plotly adds an <svg class="main-svg"> to each plot it draws; the raw file has none.
    assert dom.count('class="main-svg"') >= 4 * 2
    # Every label is drawn at the default size: the budget line's, the replayed experiment's,
    # and one tick label per bar of the importances chart (none skipped for lack of room).
    import re

    texts = set(re.findall(r"<text[^>]*>([^<]+)</text>", dom))
    assert "budget 20,000" in texts and "Exp3 replayed" in texts
    part = dom[dom.index('id="plot-importances"') : dom.index('id="plot-curves"')]
    ticks = set(re.findall(r'class="ytick"><text[^>]*>([^<]+)</text>', part))
    wanted = set(optuna.importance.get_param_importances(_study(in_study_dir)))
    assert wanted and ticks >= wanted, wanted - ticks
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*common, "--window-size=1200,1800", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
    )
    from PIL import Image, ImageStat

    img = Image.open(shot).convert("L")
    assert img.size == (1200, 1800)
    assert ImageStat.Stat(img).stddev[0] > 10  # not a blank page


def test_export_best_reproduces_recorded_accuracy(in_study_dir, data_dir):
    r = runner.invoke(
        app,
        ["export", "--study-name", "budget-20000", "--out", "best", "--data-dir", str(data_dir)],
    )
    assert r.exit_code == 0, r.output
    best = max(
        (t for t in _study(in_study_dir).trials if t.value is not None),
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


def test_exported_spec_retrains_to_the_trial_exactly(in_study_dir, data_dir):
    """spec.json records recipe, length, seed and data split: `train --spec` with no other
    option gives the trial's numbers again, exactly, on the CPU."""
    r = runner.invoke(
        app, ["export", "--study-name", "budget-20000", "--out", "again", "--no-verify"]
    )
    assert r.exit_code == 0, r.output
    spec = json.loads((in_study_dir / "again" / "spec.json").read_text())
    assert spec["protocol"] == {"train_subset": 400, "val_size": 1000, "split_seed": 0}
    trial = _study(in_study_dir).trials[spec["trial"]]
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


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening_addresses(port):
    """Local addresses with a listening TCP socket on ``port``, from /proc/net/tcp*."""
    found = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(name):
            continue
        for line in open(name).read().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.rsplit(":", 1)
            if int(p, 16) == port and state == "0A":  # 0A: LISTEN
                found.add(addr)
    return found


def test_dashboard_serves_the_study_on_loopback_only(study_dir):
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mnist_search",
            "dashboard",
            "--study-name",
            "budget-20000",
            "--port",
            str(port),
        ],
        cwd=study_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        studies = None
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    studies = json.load(r)["study_summaries"]
                break
            except OSError:
                time.sleep(0.5)
        assert studies is not None, proc.stdout.read1().decode() if proc.poll() is not None else ""
        (summary,) = [s for s in studies if s["study_name"] == "budget-20000"]
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}", timeout=10
        ) as r:
            detail = json.load(r)
        keys = {a["key"] for a in detail["union_user_attrs"]}
        assert {"n_params", "architecture", "weights_artifact_id"} <= keys
        trial = detail["trials"][0]
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        assert int(attrs["n_params"]) <= 20000 and trial["state"] in ("Complete", "Pruned")
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only
    finally:
        proc.terminate()
        proc.wait(timeout=10)
