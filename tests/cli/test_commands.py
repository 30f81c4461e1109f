"""The small commands (`experiments`, `--version`, `train`), driven through typer's CliRunner."""

import json

import pytest
from typer.testing import CliRunner

from mnist_search.cli.app import app

runner = CliRunner()

QUICK = ["--epochs", "1", "--train-subset", "400", "--val-size", "1000", "--device", "cpu"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_experiments_json_gives_true_counts():
    r = run("experiments", "--json")
    assert r.exit_code == 0
    rows = json.loads(r.stdout)
    assert {x["id"]: x["true_params"] for x in rows} == {
        1: 480_176,
        2: 27_738,
        3: 4_418,
        4: 12_968,
        5: 23_426,
        6: 23_426,
    }
    assert [x["id"] for x in rows if x["count_is_wrong"]] == [1]


def test_experiments_table_flags_exp1():
    r = run("experiments")
    assert r.exit_code == 0 and "480,176" in r.stdout and "~21K" in r.stdout
    assert "(!) Exp1" in r.stdout


def test_version():
    from mnist_search import __version__

    r = run("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"mnist-search {__version__}"


def test_train_spec_file_json(in_tmp, data_dir):
    spec = {
        "spec": {"convs": [{"out_channels": 8, "pool": True}, {"out_channels": 8}], "head": "gap"},
        "training": {"optimizer": "adam", "lr": 0.003, "batch_size": 64},
    }
    (in_tmp / "net.json").write_text(json.dumps(spec))
    r = run("train", "--spec", "net.json", "--json", "--data-dir", data_dir, *QUICK)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert set(out) == {
        "n_params",
        "architecture",
        "epochs",
        "batch_size",
        "device",
        "dataset",
        "train_accuracy",
        "val_accuracy",
        "test_accuracy",
        "seconds",
        "images_per_second",
        "speed",
    }
    assert out["speed"] == {
        "amp": False,
        "channels_last": False,
        "cudnn_benchmark": False,
        "compile": False,
    }  # the CPU defaults
    assert out["n_params"] == 8 * 9 + 8 + 8 * 8 * 9 + 8 + 8 * 10 + 10
    assert out["batch_size"] == 64 and out["device"] == "cpu"


@pytest.mark.slow
def test_train_experiment_6_one_epoch_beats_95(data_dir):
    """The write-up's best net under the documented protocol, one full epoch on all 55,000."""
    r = run("train", "--experiment", 6, "--json", "--data-dir", data_dir, "--device", "cpu")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["n_params"] == 23_426 and out["batch_size"] == 128 and out["epochs"] == 1
    assert out["test_accuracy"] > 95.0
