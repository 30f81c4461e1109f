"""`optimize` through typer's CliRunner against real studies in SQLite: what a study stores, what it
refuses, and one-line errors for bad options."""

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from mnist_search.cli.app import app
from mnist_search.search.storage import open_storage
from mnist_search.search.study import open_study
from mnist_search.spaces import get_space
from mnist_search.spaces.plain import spec_params, training_params
from mnist_search.training.protocol import Protocol

runner = CliRunner()

QUICK = ["--epochs", "1", "--train-subset", "400", "--val-size", "1000", "--device", "cpu"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def load(name="budget-25000"):
    return optuna.load_study(study_name=name, storage="sqlite:///studies/mnist-search.db")


@pytest.mark.slow
def test_optimize_small_study(in_tmp, data_dir):
    r = run(
        "optimize", "--budget", 25000, "--n-trials", 4, "--seed", 0, "--data-dir", data_dir, *QUICK
    )
    assert r.exit_code == 0, r.output
    assert "optuna-dashboard sqlite:///studies/mnist-search.db" in r.stdout
    trials = load().get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(trials) == 4
    # The rest of the start-up design waits for the next run (2 warm starts + 8 design points).
    assert len(load().get_trials(states=(TrialState.WAITING,))) == 6
    for t in trials:
        assert t.user_attrs["n_params"] <= 25000
        assert t.constraints["budget"] <= 0
        for key in ("architecture", "epochs", "batch_size", "device", "seconds", "spec"):
            assert key in t.user_attrs
        assert t.intermediate_values  # reported during training
        if t.state == TrialState.COMPLETE:
            assert 0 <= t.user_attrs["test_accuracy"] <= 100
    # Running again with the same name resumes the study.
    r = run(
        "optimize", "--budget", 25000, "--n-trials", 1, "--seed", 1, "--data-dir", data_dir, *QUICK
    )
    assert r.exit_code == 0, r.output
    assert len(load().get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 5
    assert len(load().get_trials()) == 10  # the design is queued once, not again


@pytest.mark.slow
def test_same_seed_same_study(tmp_path, monkeypatch, data_dir):
    values = []
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        monkeypatch.chdir(tmp_path / sub)
        r = run(
            "optimize",
            "--budget",
            8000,
            "--n-trials",
            3,
            "--seed",
            3,
            "--data-dir",
            data_dir,
            *QUICK,
        )
        assert r.exit_code == 0, r.output
        values.append(
            [(t.params, t.value, t.intermediate_values) for t in load("budget-8000").get_trials()]
        )
    assert values[0] == values[1]


def test_over_budget_and_diverging_trials_are_pruned_not_failed(in_tmp, data_dir, mnist):
    """An enqueued over-budget net costs no training; a NaN loss prunes with its reason."""
    from mnist_search.catalog.experiments import get_experiment
    from mnist_search.data.dataset import make_splits
    from mnist_search.search.objective import Objective

    storage = open_storage("sqlite:///s.db")
    protocol = Protocol(epochs=1, train_subset=300, val_size=1000)
    study = open_study(storage, "s", 25000, protocol, seed=0, space="plain")
    hp = {"batch_size": 512, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9}
    study.enqueue_trial(spec_params(get_experiment(1).spec) | training_params(hp))
    study.enqueue_trial(
        spec_params(get_experiment(3).spec) | training_params({**hp, "lr": 1e9, "batch_size": 32}),
        skip_if_exists=False,
    )
    splits = make_splits(mnist, "cpu", val_size=1000, train_subset=300)
    with pytest.warns(UserWarning, match="out of range"):
        study.optimize(Objective(25000, protocol, splits, space="plain"), n_trials=2)
    over, nan = study.get_trials()
    assert over.state == TrialState.PRUNED and over.user_attrs["n_params"] == 480_176
    assert over.constraints["budget"] == 480_176 - 25000 and not over.intermediate_values
    assert over.user_attrs["pruned_reason"].startswith("over budget")
    assert nan.state == TrialState.PRUNED and "diverged" in nan.user_attrs["pruned_reason"]


def test_existing_study_with_another_budget_is_refused(in_tmp, data_dir):
    storage = open_storage("sqlite:///studies_x.db")
    open_study(storage, "mine", 5000, Protocol())
    r = run(
        "optimize",
        "--budget",
        6000,
        "--study-name",
        "mine",
        "--storage",
        "sqlite:///studies_x.db",
        "--n-trials",
        1,
        "--data-dir",
        data_dir,
    )
    assert r.exit_code == 2
    assert "exists with --budget 5000, not --budget 6000; use that" in r.stderr
    assert len(load_trials("mine", "sqlite:///studies_x.db")) == 0


def test_a_study_reads_back_what_it_was_made_for(in_tmp):
    from mnist_search.search.study import StudyAttrs

    protocol = Protocol(epochs=2, train_subset=400, val_size=1000)
    study = open_study(open_storage("sqlite:///a.db"), "a", 5000, protocol, space="plain")
    attrs = StudyAttrs.of(study)
    assert attrs == StudyAttrs(5000, get_space("plain").version, protocol)
    assert study.user_attrs == attrs.stored()  # JSON values only, nothing else stored


def test_existing_study_with_another_protocol_names_the_flags(in_tmp, data_dir):
    open_study(
        open_storage("sqlite:///p.db"),
        "p",
        5000,
        Protocol(epochs=1, train_subset=400, val_size=1000),
    )
    r = run(
        "optimize",
        "--budget",
        5000,
        "--study-name",
        "p",
        "--storage",
        "sqlite:///p.db",
        "--n-trials",
        1,
        "--data-dir",
        data_dir,
        "--epochs",
        2,
        "--device",
        "cpu",
    )
    assert r.exit_code == 2
    assert (
        "exists with --epochs 1 --train-subset 400 --val-size 1000, not --epochs 2 "
        "--val-size 5000; use those or another --study-name"
    ) in r.stderr
    assert "{" not in r.stderr  # no Python reprs


def load_trials(name, url):
    return optuna.load_study(study_name=name, storage=url).get_trials()


@pytest.mark.parametrize(
    "args, message",
    [
        (["optimize", "--budget", 0], "--budget 0: must be a positive"),
        (
            ["optimize", "--budget", 50],
            "--budget 50 is below the smallest net in the modern search space (246",
        ),
        (
            ["optimize", "--budget", 50, "--space", "plain"],
            "--budget 50 is below the smallest net in the plain search space (90",
        ),
        (["optimize", "--epochs", 0], "--epochs 0: must be at least 1"),
        (["optimize", "--n-trials", 0], "--n-trials 0"),
        (["optimize", "--device", "tpu"], "unknown device 'tpu'; valid: auto, cpu"),
        (["optimize", "--device", "cuda:3"], "device 'cuda:3' is not there"),
        (["optimize", "--storage", "notaurl"], "storage URL 'notaurl' is malformed"),
        (["optimize", "--storage", "sqlite:///no/such/dir/x.db"], "does not exist"),
        (["optimize", "--pruner", "sometimes"], "--pruner 'sometimes'; valid: rungs, median"),
        (
            ["optimize", "--train-subset", 59000],
            "--train-subset 59000: must be between 1 and 55,000",
        ),
        (
            ["optimize", "--data-dir", "/no/such/folder"],
            "data folder /no/such/folder does not exist",
        ),
        (["train", "--experiment", 9], "unknown experiment 9; valid: 1, 2, 3, 4, 5, 6"),
        (["train"], "give exactly one of --spec FILE or --experiment N"),
        (["train", "--spec", "missing.json"], "--spec missing.json: cannot read it"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(in_tmp, args, message):
    r = run(*args)
    assert r.exit_code == 2, r.output
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert list(in_tmp.iterdir()) == []


def test_corrupt_data_dir_is_refused_before_the_study_is_made(in_tmp, data_dir):
    from mnist_search.data.mnist import read_folder

    bad = in_tmp.parent / "bad-mnist"
    bad.mkdir(exist_ok=True)
    for name, raw in read_folder(data_dir).items():
        (bad / name).write_bytes(raw[:-1] + b"\1" if name.startswith("train-labels") else raw)
    r = run("optimize", "--n-trials", 1, "--data-dir", bad)
    assert r.exit_code == 2 and "train-labels-idx1-ubyte has MD5" in r.stderr
    assert list(in_tmp.iterdir()) == []


@pytest.mark.slow
def test_successive_halving_search_trains_the_promising_longer(in_tmp, data_dir):
    """--pruner sha --epochs 3: every trial reports after its first epoch; only those in the best
    third of that rung train on (or the first ones, while a rung is still filling)."""
    r = run(
        "optimize",
        "--budget",
        3000,
        "--n-trials",
        9,
        "--epochs",
        3,
        "--pruner",
        "sha",
        "--seed",
        4,
        "--warm-start",
        "none",
        "--final-seeds",
        0,
        "--train-subset",
        300,
        "--val-size",
        300,
        "--device",
        "cpu",
        "--data-dir",
        data_dir,
    )
    assert r.exit_code == 0, r.output
    trials = load("budget-3000").get_trials()
    lengths = [len(t.intermediate_values) for t in trials]  # reports: 1 per epoch from 3 epochs
    assert all(n >= 1 for n in lengths)
    stopped = [t for t in trials if t.state == TrialState.PRUNED]
    assert stopped and all(len(t.intermediate_values) < 3 for t in stopped)
    assert any(n == 3 for n in lengths)
