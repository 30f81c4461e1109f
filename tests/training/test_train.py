"""The trainer: it learns, repeats itself with a seed, stops when told, judges the interim validation
it should, and loads no optimizer it does not use."""

from __future__ import annotations

import subprocess
import sys
import time

import optuna
import pytest
import torch

from mnist_search.catalog.experiments import get_experiment
from mnist_search.data.augment import augment, random_affine
from mnist_search.data.mnist import MEAN, STD
from mnist_search.spaces import modern
from mnist_search.training.loop import Diverged, TrainConfig, train
from mnist_search.training.protocol import Protocol
from mnist_search.training.steps import INTERIM_VAL, TimeUp, interim, report_points


@pytest.mark.slow
def test_the_first_optimizer_imports_nothing_once_the_trainer_is_loaded():
    """torch's first optimizer imports torch._dynamo (2-3 s) unless the trainer already did: a
    stop signal landing inside that import, after the data is loaded, left torch half-imported
    and the process ended by SIGINT (or hung) instead of exiting 130 (1 run in ~40 of the test
    below)."""
    code = (
        "import sys, torch, mnist_search.training.loop\n"
        "m = torch.nn.Linear(1, 1)\n"
        "before = set(sys.modules)\n"
        "for opt in (torch.optim.SGD(m.parameters(), lr=0.1), torch.optim.AdamW(m.parameters())):\n"
        "    m(torch.ones(1)).sum().backward(); opt.step()\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_reports_inside_an_epoch_judge_a_sample_and_its_end_all_of_it(small_splits):
    import torch

    from mnist_search.data.dataset import Split
    from mnist_search.training.loop import evaluate

    val, test = small_splits.val, small_splits.test
    # 1,500 images: an accuracy over all of them is a multiple of 1/15 %, one over the first
    # 1,000 a multiple of 0.1 %.
    wide = Split(
        torch.cat([val.images, test.images[:500]]), torch.cat([val.labels, test.labels[:500]])
    )
    assert len(interim(wide)) == INTERIM_VAL and len(interim(val)) == len(val)
    assert torch.equal(interim(wide).labels, val.labels)  # the first images of the split
    splits = type(small_splits)(small_splits.train, wide, test, "test")
    spec = modern.build(modern.startup_design(5000, 1, seed=0)[0])
    cfg = TrainConfig(epochs=1, batch_size=32, lr=0.05, reports_per_epoch=8)
    r = train(spec, cfg, splits, keep_model=True, evaluate_test=False)
    assert len(r.history) == 8
    assert r.val_accuracy == evaluate(r.model, wide)  # the epoch's last report: all of it
    assert all(abs(v * 10 - round(v * 10)) < 1e-6 for _, v in r.history[:-1])


def test_training_learns_and_reports(small_splits):
    seen = []
    cfg = TrainConfig(epochs=2, batch_size=64, optimizer="adam", lr=3e-3, reports_per_epoch=3)
    r = train(get_experiment(3).spec, cfg, small_splits, on_report=lambda s, v: seen.append((s, v)))
    assert [s for s, _ in seen] == list(range(6)) and r.history == seen
    assert r.val_accuracy == seen[-1][1] > 70.0  # 2,000 images, 2 epochs: far above chance (10%)
    assert r.test_accuracy is not None and r.test_accuracy > 70.0
    assert r.n_params == 4418 and r.images_per_second > 0


def test_same_seed_same_result(small_splits):
    cfg = TrainConfig(batch_size=128, lr=0.05, augment="small", seed=7)
    a = train(get_experiment(3).spec, cfg, small_splits)
    b = train(get_experiment(3).spec, cfg, small_splits)
    assert a.history == b.history and a.train_accuracy == b.train_accuracy


def test_callback_can_stop_training(small_splits):
    class Stop(Exception):
        pass

    def stop(step, val):
        raise Stop

    with pytest.raises(Stop):
        train(get_experiment(3).spec, TrainConfig(), small_splits, on_report=stop)


def test_divergence_is_raised(small_splits):
    with pytest.raises(Diverged, match="nan|inf"):
        train(get_experiment(3).spec, TrainConfig(lr=1e8, momentum=0.9), small_splits)


def test_report_points():
    assert report_points(10, 4) == [2, 4, 7, 9]
    assert report_points(2, 4) == [0, 1]


def test_augmentation_keeps_labels_aligned():
    """Each augmented image stays closest to its own original, so labels stay with their images."""
    gen = torch.Generator().manual_seed(0)
    bg = (0.0 - MEAN) / STD  # MNIST's normalised black
    imgs = torch.full((10, 1, 28, 28), bg)
    for i in range(10):  # ten squares of distinct brightness
        imgs[i, 0, 6:22, 6:22] = bg + 0.3 * (i + 1)
    out = augment(imgs, "small", gen, bg)
    assert out.shape == imgs.shape and not torch.equal(out, imgs)
    # A 2px shift and 10 degree turn keep the centre inside each square: its brightness says
    # which original each output came from.
    levels = bg + 0.3 * (torch.arange(10) + 1)
    centre = out[:, 0, 11:17, 11:17].mean((1, 2))
    assert torch.equal((centre[:, None] - levels[None]).abs().argmin(1), torch.arange(10))
    # The border fills with the normalised black value, not with zero (grey).
    moved = random_affine(imgs, 0.0, 5.0, torch.Generator().manual_seed(1), bg)
    assert torch.allclose(moved[:, :, 0, 0], torch.full((10, 1), bg), atol=1e-5)
    assert torch.equal(augment(imgs, "none"), imgs)


def test_deadline_stops_training(small_splits):
    with pytest.raises(TimeUp, match="epoch 1, batch 1/"):
        train(get_experiment(3).spec, TrainConfig(), small_splits, deadline=time.time() - 1)


def test_recipe_settings_are_checked():
    with pytest.raises(ValueError, match="label_smoothing=1.0; must be in"):
        TrainConfig(label_smoothing=1.0)
    with pytest.raises(ValueError, match="nesterov=True needs optimizer 'sgd'"):
        TrainConfig(optimizer="adamw", nesterov=True)
    with pytest.raises(ValueError, match="schedule='step'; valid: constant, onecycle, cosine"):
        TrainConfig(schedule="step")


def test_cosine_schedule_warms_up_then_decays_to_zero():
    from torch import nn

    from mnist_search.training.loop import make_schedule

    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.4)
    sched = make_schedule(opt, TrainConfig(lr=0.4, schedule="cosine"), total_steps=100)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.2) and max(lrs) == pytest.approx(0.4)
    assert lrs == sorted(lrs[:2]) + sorted(lrs[2:], reverse=True)
    assert lrs[-1] < 0.001


@pytest.mark.slow
def test_modern_recipe_learns(small_splits):
    """Separable residual blocks, 1×1 transition, label smoothing, Nesterov SGD, augmentation."""
    from mnist_search.spaces.modern import build_spec

    spec = build_spec(
        2, "same", [2, 1], [12, 16], separable=True, residual=True, transition=True, head="flatten"
    )
    cfg = TrainConfig(
        epochs=3,
        batch_size=32,
        optimizer="sgd",
        lr=0.05,
        momentum=0.9,
        nesterov=True,
        weight_decay=1e-4,
        schedule="onecycle",
        label_smoothing=0.1,
        augment="small",
    )
    r = train(spec, cfg, small_splits)
    assert r.val_accuracy > 80, r.val_accuracy


def test_weight_average_follows_its_decay_and_ramp():
    from torch import nn

    from mnist_search.training.loop import WeightAverage, ema_decay

    live = nn.BatchNorm2d(2)
    avg = WeightAverage(live, decay=0.999)
    with torch.no_grad():
        live.weight.fill_(3.0)  # started at 1
        live.running_mean.fill_(1.0)
    avg.update()
    w = 1 - ema_decay(0.999, 1)  # the ramp: decay 2/11 at the first step, not 0.999
    assert ema_decay(0.999, 1) == pytest.approx(2 / 11) and ema_decay(0.999, 10**6) == 0.999
    assert torch.allclose(avg.model.weight, torch.full((2,), 1 + 2 * w))
    assert torch.allclose(avg.model.running_mean, torch.full((2,), w))
    assert avg.model.num_batches_tracked == live.num_batches_tracked


@pytest.mark.slow
def test_weight_average_is_what_is_judged_and_kept(small_splits):
    from mnist_search.training.loop import evaluate

    spec = get_experiment(3).spec
    cfg = TrainConfig(batch_size=64, lr=0.05, momentum=0.9, seed=3)
    raw = train(spec, cfg, small_splits, keep_model=True)
    avg = train(spec, TrainConfig(**{**cfg.to_dict(), "ema": 0.99}), small_splits, keep_model=True)
    # The same optimisation path; what differs is the model evaluated and returned.
    assert raw.train_accuracy == avg.train_accuracy
    assert avg.history != raw.history
    assert evaluate(avg.model, small_splits.val) == avg.val_accuracy
    assert evaluate(avg.model, small_splits.test) == avg.test_accuracy
    with pytest.raises(ValueError, match="ema=1.0; must be in"):
        TrainConfig(ema=1.0)


@pytest.mark.slow
def test_a_dead_trial_is_stopped_at_its_first_judged_report(mnist):
    """A net at chance after 10,000 images is pruned there with its reason, whatever the pruner
    (here none), from the first trial on; a learning one is not."""

    from mnist_search.catalog.experiments import get_experiment
    from mnist_search.data.dataset import make_splits
    from mnist_search.search.objective import DEAD_AFTER, Objective
    from mnist_search.search.records import TrialRecord, queued

    splits = make_splits(mnist, "cpu", val_size=1000, train_subset=2 * DEAD_AFTER)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    spec = get_experiment(3).spec  # 4,418 parameters
    for lr in (1e-9, 0.05):  # no learning at all; then a rate that learns
        study.enqueue_trial(
            {},
            user_attrs=queued(
                fixed_spec=spec.to_dict(),
                fixed_training={"optimizer": "sgd", "lr": lr, "momentum": 0.9, "batch_size": 64},
            ),
        )
    protocol = Protocol(epochs=1, train_subset=2 * DEAD_AFTER, val_size=1000)
    study.optimize(Objective(None, protocol, splits, space="plain", prune_dead=True), n_trials=2)
    dead, alive = (TrialRecord.of(t) for t in study.trials)
    assert dead.state == optuna.trial.TrialState.PRUNED, dead
    # 16 reports of 1,250 images: the eighth is the first after 10,000
    assert dead.pruned_reason.startswith("dead at step 7: val "), dead.pruned_reason
    assert alive.state == optuna.trial.TrialState.COMPLETE and alive.val_accuracy > 50
    # Outside a search (a replay, a final retraining) a fixed net trains to its end regardless.
    fixed = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    fixed.enqueue_trial({}, user_attrs=study.trials[0].user_attrs)
    fixed.optimize(Objective(None, protocol, splits, space="plain"), n_trials=1)
    assert fixed.trials[0].state == optuna.trial.TrialState.COMPLETE
