"""`--parallel`: the search and the replay train same-shape candidates fused, and give what separate
runs give."""

import pytest


@pytest.mark.slow
def test_optimize_parallel_fuses_groups_under_the_default_space(tmp_path, monkeypatch, data_dir):
    """--parallel 3: one sampled net plus two variants the sampler gives other training settings,
    trained as one fused group (BatchNorm, separable and residual nets alike)."""
    import optuna
    from typer.testing import CliRunner

    from mnist_search.cli.app import app
    from mnist_search.spaces import get_space

    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(
        app,
        [
            "optimize",
            "--budget",
            "3000",
            "--n-trials",
            "6",
            "--parallel",
            "3",
            "--seed",
            "5",
            "--train-subset",
            "256",
            "--val-size",
            "300",
            "--warm-start",
            "none",
            "--startup",
            "0",
            "--final-seeds",
            "0",
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
    assert len(trials) == 6
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    free = get_space("modern").free
    for g in (trials[0:3], trials[3:6]):
        assert [t.user_attrs.get("fused_k") for t in g] == [3, 3, 3]
        assert {t.user_attrs["fused_group"] for t in g} == {g[0].number}
        assert g[0].user_attrs["spec"] == g[1].user_attrs["spec"] == g[2].user_attrs["spec"]
        shared = [{k: v for k, v in t.params.items() if k not in free} for t in g]
        assert shared[0] == shared[1] == shared[2]
        assert len({t.user_attrs["training"]["lr"] for t in g}) == 3  # variants, not copies


def test_compile_and_parallel_are_refused_together(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from mnist_search.cli.app import app

    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["optimize", "--parallel", "4", "--compile"])
    assert r.exit_code == 2
    assert "--compile" in r.output and "parallel=4" in r.output
    assert not (tmp_path / "studies").exists()


def test_replay_parallel_trains_seed_replicas_together(tmp_path, monkeypatch, data_dir):
    from typer.testing import CliRunner

    from mnist_search.cli.app import app

    monkeypatch.chdir(tmp_path)
    args = [
        "replay",
        "--experiments",
        "3",
        "--seeds",
        "2",
        "--parallel",
        "2",
        "--json",
        "--train-subset",
        "256",
        "--val-size",
        "300",
        "--device",
        "cpu",
        "--data-dir",
        str(data_dir),
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    import json

    (row,) = json.loads(r.stdout)["experiments"]
    assert row["seeds"] == [0, 1] and row["test_accuracy"]["n"] == 2


@pytest.mark.slow
def test_optimize_parallel_trains_queued_nets_alone_then_groups(tmp_path, monkeypatch, data_dir):
    """--parallel 3 with a start-up design: a queued design net trains alone while another is
    queued behind it (they are different nets); the last one gets its variants."""
    import optuna
    from typer.testing import CliRunner

    from mnist_search.cli.app import app
    from mnist_search.spaces import get_space

    monkeypatch.chdir(tmp_path)
    args = ["optimize", "--budget", "3000", "--n-trials", "5", "--parallel", "3", "--seed", "5"]
    args += ["--train-subset", "256", "--val-size", "300", "--warm-start", "none"]
    args += ["--startup", "2", "--final-seeds", "0", "--device", "cpu", "--data-dir", str(data_dir)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    trials = optuna.load_study(
        study_name="budget-3000", storage="sqlite:///studies/mnist-search.db"
    ).trials
    assert [t.user_attrs.get("design") for t in trials] == [0, 1, None, None, None]
    assert [t.user_attrs.get("fused_k") for t in trials] == [None, 3, 3, 3, None]
    free = set(get_space("modern").free)
    shared = {k: v for k, v in trials[1].params.items() if k not in free}
    assert all({k: t.params[k] for k in shared} == shared for t in trials[2:4])
