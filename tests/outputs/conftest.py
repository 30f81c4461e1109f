"""A finished study with stored weights and a replayed experiment, shared by the report, export
and dashboard tests (made once per session: it trains five nets and two replays)."""

import os

import optuna
import pytest
from typer.testing import CliRunner

from mnist_search.cli.app import app

TINY = ["--train-subset", "400", "--val-size", "1000", "--device", "cpu"]


@pytest.fixture(scope="session")
def study_dir(tmp_path_factory, data_dir):
    """A finished 5-trial study (weights stored) and a replayed Exp3, in one folder."""
    folder = tmp_path_factory.mktemp("results")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        r = CliRunner().invoke(
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
        r = CliRunner().invoke(
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


@pytest.fixture
def study(study_dir):
    """The search study in ``study_dir``, as Optuna loads it."""
    return optuna.load_study(
        study_name="budget-20000", storage=f"sqlite:///{study_dir}/studies/mnist-search.db"
    )
