"""Fused training of K same-shape candidates follows the same path as K separate runs."""

import pytest
import torch

from mnist_search.experiments import get_experiment
from mnist_search.fused import FusedError, train_fused
from mnist_search.spec import ArchSpec, ConvLayer
from mnist_search.train import Diverged, TrainConfig, train

SPEC = ArchSpec((ConvLayer(8, 3, 0, True), ConvLayer(16, 3, 0, True)), hidden=(32,))
# Same seeds, same data order, same augmentation draws: only floating-point rounding differs
# (vmap batches the convolutions differently), so accuracies agree to within a few images.
TOL_POINTS = 1.0  # percentage points of validation accuracy


@pytest.fixture(scope="module")
def tiny(mnist):
    # vmapped convolutions are slow on a CPU (the speed is for GPUs); keep these runs small.
    from mnist_search.data import make_splits

    return make_splits(mnist, "cpu", val_size=500, train_subset=640)


@pytest.mark.parametrize("opt, lrs, augment", [
    ("sgd", [0.05, 0.02, 0.1], "none"),
    ("adam", [3e-3, 1e-3, 2e-3], "small"),
    ("adamw", [3e-3, 3e-3, 3e-3], "none"),
])
def test_fused_matches_separate(tiny, opt, lrs, augment):
    cfgs = [TrainConfig(epochs=1, batch_size=64, optimizer=opt, lr=lr, momentum=0.9,
                        weight_decay=1e-3 if opt == "adamw" else 0.0, augment=augment,
                        schedule="onecycle" if opt == "adam" else "constant",
                        reports_per_epoch=2, seed=seed) for seed, lr in enumerate(lrs)]
    fused = train_fused(SPEC, cfgs, tiny, keep_models=True, evaluate_test=False)
    for cfg, f in zip(cfgs, fused):
        alone = train(SPEC, cfg, tiny, keep_model=True, evaluate_test=False)
        assert len(f.history) == len(alone.history) == 2
        for (s1, v1), (s2, v2) in zip(f.history, alone.history):
            assert s1 == s2 and abs(v1 - v2) <= TOL_POINTS
        for (name, a), b in zip(f.model.state_dict().items(), alone.model.state_dict().values()):
            assert torch.allclose(a, b, atol=2e-3, rtol=1e-2), name


def test_first_steps_agree_closely(tiny):
    """After a handful of steps the weights are the same to float32 rounding."""
    sub = type(tiny)(type(tiny.train)(tiny.train.images[:256], tiny.train.labels[:256]),
                     tiny.val, tiny.test, tiny.source)
    cfgs = [TrainConfig(batch_size=64, lr=0.05, momentum=0.9, seed=s) for s in (3, 4)]
    fused = train_fused(SPEC, cfgs, sub, keep_models=True, evaluate_test=False)
    for cfg, f in zip(cfgs, fused):
        alone = train(SPEC, cfg, sub, keep_model=True, evaluate_test=False)
        for a, b in zip(f.model.state_dict().values(), alone.model.state_dict().values()):
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_one_candidate_stopping_does_not_stop_the_others(tiny):
    class Pruned(Exception):
        pass

    def prune(step, val):
        raise Pruned

    cfgs = [TrainConfig(batch_size=32, lr=lr, momentum=0.9, seed=0, reports_per_epoch=2)
            for lr in (0.05, 1e8, 0.05)]
    out = train_fused(SPEC, cfgs, tiny, on_report=[None, None, prune])
    assert isinstance(out[1], Diverged) and isinstance(out[2], Pruned)
    assert out[0].val_accuracy > 40 and len(out[0].history) == 2  # learning: chance is 10%
    assert out[0].test_accuracy is not None


def test_unfusable_candidates_are_refused(tiny):
    with pytest.raises(FusedError, match="must share batch_size"):
        train_fused(SPEC, [TrainConfig(batch_size=64), TrainConfig(batch_size=128)], tiny)
    bn = ArchSpec((ConvLayer(4),), batchnorm=True)
    with pytest.raises(FusedError, match="BatchNorm"):
        train_fused(bn, [TrainConfig()], tiny)
    assert get_experiment(6).spec.batchnorm is False  # the documented nets all fuse


def test_optimize_parallel_groups_variants_of_one_net(tmp_path, monkeypatch, data_dir):
    """--parallel 3: one sampled net plus two variants the sampler gives other learning rates."""
    import optuna
    from typer.testing import CliRunner

    from mnist_search.cli import app
    from mnist_search.spaces import get_space

    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["optimize", "--budget", "3000", "--n-trials", "6", "--parallel",
                                 "3", "--seed", "5", "--train-subset", "256", "--val-size", "300",
                                 "--device", "cpu", "--data-dir", str(data_dir)])
    assert r.exit_code == 0, r.output
    trials = optuna.load_study(study_name="budget-3000",
                               storage="sqlite:///studies/mnist-search.db").trials
    assert len(trials) == 6
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    for g in (trials[0:3], trials[3:6]):
        if g[0].user_attrs["spec"]["batchnorm"] or g[0].user_attrs["spec"]["dropout"]:
            continue  # not fusable: trained one by one
        free = get_space("modern").free
        shared = [{k: v for k, v in t.params.items() if k not in free} for t in g]
        assert shared[0] == shared[1] == shared[2]


def test_replay_parallel_trains_seed_replicas_together(tmp_path, monkeypatch, data_dir):
    from typer.testing import CliRunner

    from mnist_search.cli import app

    monkeypatch.chdir(tmp_path)
    args = ["replay", "--experiments", "3", "--seeds", "2", "--parallel", "2", "--json",
            "--train-subset", "256", "--val-size", "300", "--device", "cpu", "--data-dir",
            str(data_dir)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    import json

    (row,) = json.loads(r.stdout)["experiments"]
    assert row["seeds"] == [0, 1] and row["test_accuracy"]["n"] == 2
