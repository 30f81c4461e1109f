"""A stopped or repeated `optimize` goes on where it was: new candidates on resume, odd last batches."""

import json

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from mnist_search.cli.app import app

runner = CliRunner()

TINY = ["--train-subset", "300", "--val-size", "300", "--device", "cpu"]


@pytest.mark.slow
def test_a_last_batch_of_one_image_does_not_crash_batchnorm(tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(
        app,
        [
            "optimize",
            "--budget",
            3000,
            "--n-trials",
            2,
            "--seed",
            1,
            "--train-subset",
            257,
            "--val-size",
            300,
            "--device",
            "cpu",
            "--data-dir",
            str(data_dir),
        ],
    )
    assert r.exit_code == 0, r.output
    trials = optuna.load_study(
        study_name="budget-3000", storage="sqlite:///studies/mnist-search.db"
    ).trials
    trials = [t for t in trials if t.state != TrialState.WAITING]  # the design's rest waits
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert all(t.user_attrs["spec"]["batchnorm"] for t in trials)  # the modern space's nets


@pytest.mark.slow
def test_the_same_seed_proposes_new_candidates_on_resume(tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        r = runner.invoke(
            app,
            [
                "optimize",
                "--budget",
                3000,
                "--n-trials",
                3,
                "--seed",
                5,
                "--pruner",
                "none",
                "--startup",
                0,  # the sampler's own draws are what is checked
                "--data-dir",
                str(data_dir),
                *TINY,
            ],
        )
        assert r.exit_code == 0, r.output
    trials = optuna.load_study(
        study_name="budget-3000", storage="sqlite:///studies/mnist-search.db"
    ).trials
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 6
