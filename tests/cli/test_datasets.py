"""A user's own IDX folder end to end (optimize, train --spec, export checked on its own test
images, report, frontier), and what keeps data apart: a study resumes only on its own data, a
spec file retrains on its own, and the shipped MNIST nets are never queued on other data."""

from __future__ import annotations

import json
import shutil

import optuna
import pytest
from typer.testing import CliRunner

from mnist_search.cli.app import app
from mnist_search.data.idx import FILES
from mnist_search.data.own import load_own
from mnist_search.search.warmstart import warm_start
from mnist_search.testing import one_line_error

runner = CliRunner()
FAST = ["--device", "cpu", "--train-subset", "1000", "--val-size", "500"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _ok(r):
    assert r.exit_code == 0, (r.output, r.exception)
    return r


@pytest.mark.slow
def test_an_own_folder_end_to_end(own_dir, data_dir, in_tmp):
    name = load_own(own_dir).name
    r = _ok(
        run(
            "optimize", "--dataset", "idx", "--data-dir", own_dir, "--budget", 3000,
            "--n-trials", 3, "--final-seeds", 1, "--final-epochs", 1, "--final-top", 1, *FAST,
        )
    )  # fmt: skip
    assert f"none of the shipped nets was found on {name}" in r.output
    study = optuna.load_study(
        study_name="idx-budget-3000", storage="sqlite:///studies/mnist-search.db"
    )
    assert study.user_attrs["protocol"]["dataset"] == name
    assert all(t.user_attrs.get("warm_start") is None for t in study.trials)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert done and all(t.user_attrs["dataset"] == name for t in done)
    assert all(t.user_attrs["spec"]["num_classes"] == 5 for t in done)

    # The spec file retrains on its own data, to the numbers it records.
    best = json.loads(open("studies/idx-budget-3000-best.json").read())
    assert best["protocol"]["dataset"] == name and best["spec"]["num_classes"] == 5
    again = json.loads(
        _ok(run("train", "--spec", "studies/idx-budget-3000-best.json", "--data-dir", own_dir,
                "--json", "--device", "cpu")).stdout
    )  # fmt: skip
    assert again["dataset"] == name
    assert again["val_accuracy"] == pytest.approx(best["result"]["val_mean"], abs=1e-9)
    # ... and not on other data unless told: without a folder, on another folder, and told to
    # (then the net's 5 outputs do not fit MNIST's 10 classes).
    spec = "studies/idx-budget-3000-best.json"
    assert "--dataset idx needs --data-dir" in one_line_error(run("train", "--spec", spec))
    line = one_line_error(run("train", "--spec", spec, "--data-dir", data_dir))
    assert f"not {name}" in line and "--dataset idx" in line
    line = one_line_error(run("train", "--spec", spec, "--data-dir", data_dir, "--dataset", "idx"))
    assert "5 outputs" in line and "10 classes" in line

    # Export: the model carries this data's normalisation and is checked on its test images.
    r = _ok(run("export", "--study-name", "idx-budget-3000", "--out", "net", "--data-dir", own_dir))
    contract = json.loads(open("net/spec.json").read())["model"]
    assert contract["dataset"] == name and "N×5 log-probabilities" in contract["output"]
    assert "model.pt2: test accuracy" in r.output and "MISMATCH" not in r.output
    assert "output: N×5 log-probabilities" in r.output

    _ok(run("report", "--study-name", "idx-budget-3000", "--out", "r.html"))
    assert f"Dataset <b>{name}</b>" in open("r.html").read()

    # The frontier, its rows confirmed with a fresh seed and shipped into a folder of known nets.
    (in_tmp / "known").mkdir()
    (in_tmp / "known" / "old.json").write_text("{}")
    r = _ok(
        run(
            "frontier", "--dataset", "idx", "--data-dir", own_dir, "--budgets", "1500,3000",
            "--timeout", 45, "--final-seeds", 1, "--out", "fr", "--confirm", "--ship", "known",
            *FAST,
        )
    )  # fmt: skip
    md = open("fr/frontier.md").read()
    assert f"Dataset: **{name}**" in md and "frontier-idx-<budget>" in md
    assert "| 1,500 |" in md and "| 3,000 |" in md
    assert "ruslangrimov" not in md and "Exp1" not in open("fr/frontier.html").read()
    assert "Confirmed with fresh seeds" in md and "| 1,500 | 1 |" in md
    # Each row is confirmed as its budget ends, inside the time limit, before the next begins.
    log = r.output
    assert log.index("confirming budget 1,500") < log.index("budget 3,000 gets")
    assert "s of it to confirm" in log
    assert sorted(p.name for p in (in_tmp / "known").iterdir()) == [
        "budget-1500.json",
        "budget-3000.json",
    ]
    assert "removed: known/old.json" in r.output
    shipped = json.loads((in_tmp / "known" / "budget-3000.json").read_text())
    assert shipped["record"] == "fr/budget-3000.json" and shipped["fresh"]["seeds"] == [1]
    assert shipped["provenance"]["dataset"] == name and shipped["provenance"]["commit"]
    assert shipped["result"] == json.loads(open("fr/budget-3000.json").read())["result"]
    # What was shipped retrains as `train --spec` reads it, to the row's own figures.
    again = json.loads(
        _ok(run("train", "--spec", "known/budget-1500.json", "--data-dir", own_dir, "--json",
                "--device", "cpu")).stdout
    )  # fmt: skip
    row = json.loads(open("fr/frontier.json").read())["rows"][0]
    assert again["val_accuracy"] == pytest.approx(row["val_mean"], abs=1e-9)
    assert row["fresh_seeds"] == [1] and row["fresh_val_mean"] is not None


def _search(own, *more):
    return run(
        "optimize", "--dataset", "idx", "--data-dir", own, "--budget", 2000, "--n-trials", 1,
        "--final-seeds", 0, "--study-name", "s", *FAST, *more,
    )  # fmt: skip


@pytest.mark.slow
def test_a_study_resumes_only_on_its_own_data(own_dir, data_dir, in_tmp):
    name = load_own(own_dir).name
    _ok(_search(own_dir))
    _ok(_search(own_dir))  # the same data: resumed
    other = in_tmp / "other"
    other.mkdir()
    for f in FILES.values():
        shutil.copy(own_dir / f, other / f)
    raw = bytearray((other / FILES["test_labels"]).read_bytes())
    raw[-1] = (raw[-1] + 1) % 5
    (other / FILES["test_labels"]).write_bytes(bytes(raw))
    line = one_line_error(_search(other))
    assert (
        f"--dataset {name}" in line and "--dataset idx:" in line and "another --study-name" in line
    )
    line = one_line_error(
        run("optimize", "--data-dir", data_dir, "--budget", 2000, "--n-trials", 1,
            "--study-name", "s", *FAST)
    )  # fmt: skip
    assert f"exists with --epochs 1 --train-subset 1000 --val-size 500 --dataset {name}" in line


def test_shipped_mnist_nets_are_never_queued_on_other_data(tmp_path):
    from importlib import resources

    study = optuna.create_study(direction="maximize")
    found = resources.files("mnist_search.catalog").joinpath("found", "budget-1000.json")
    (tmp_path / "budget-1000.json").write_text(found.read_text())  # a frontier's MNIST result
    lines = warm_start("found", study, 2000, "modern", (str(tmp_path),), dataset="fashion-mnist")
    assert not study.get_trials() and len(study._storage.get_all_trials(study._study_id)) == 0
    assert "none of the shipped nets was found on fashion-mnist" in lines[0]
    assert "budget-1000.json was found on mnist, not fashion-mnist" in lines[1]
    lines = warm_start("documented", study, 30000, "modern", dataset="fashion-mnist")
    assert "write-up's nets are MNIST's" in lines[0] and not study.get_trials()
    # On MNIST the same calls queue them.
    assert any("queued" in x for x in warm_start("found", study, 2000, "modern", (str(tmp_path),)))
