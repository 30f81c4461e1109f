"""Fused training of K same-shape candidates follows the same path as K separate runs."""

import pytest
import torch

from mnist_search.catalog.experiments import get_experiment
from mnist_search.net.spec import ArchSpec, ConvLayer
from mnist_search.spaces import modern, tiny
from mnist_search.training.fused import FusedError, check_fusable, train_fused
from mnist_search.training.loop import Diverged, Speed, TrainConfig, train

SPEC = ArchSpec((ConvLayer(8, 3, 0, True), ConvLayer(16, 3, 0, True)), hidden=(32,))

# Same seeds, same data order, same augmentation draws: only floating-point rounding differs
# (grouped convolutions add up in another order), so accuracies agree to within a few images.
TOL_POINTS = 1.0  # percentage points of validation accuracy

# The default space's kinds of net: BatchNorm, depthwise-separable, residual, GAP head.
BN = ArchSpec((ConvLayer(6, 3, 1, True), ConvLayer(12, 3, 1, True)), batchnorm=True)

SEPARABLE = modern.build_spec(2, "same", [1, 2], [6, 10], separable=True, head="flatten")

RESIDUAL = modern.build_spec(2, "same", [2, 2], [6, 8], residual=True, transition=True)

SHARED = modern.build_spec(2, "same", [1, 4], [6, 8], separable=True, share=True, hidden=12)

# Factorized 3×1/1×3 blocks (shared, so each use has BatchNorms of its own) and a 1×1 squeeze.
# At these widths one epoch on 640 images barely learns, and training so near chance amplifies
# rounding: it is checked step by step below, not by the accuracy after training.
FACTORIZED = modern.build_spec(
    2, "same", [1, 3], [6, 8], factorize=True, share=True, head="flatten", squeeze=4
)

# The tiny space's kind: no normalisation (conv biases), LeakyReLU, valid separable blocks.
TINY = tiny.build_spec([6, 5, 9, 10, 8], norm="none", activation="leaky")


@pytest.fixture(scope="module")
def tiny(mnist):
    # Grouped convolutions gain little on a CPU (the speed is for GPUs); keep these runs small.
    from mnist_search.data.dataset import make_splits

    return make_splits(mnist, "cpu", val_size=500, train_subset=640)


@pytest.fixture(scope="module")
def sub(tiny):
    """The first 256 of ``tiny``'s training images: four steps at batch 64, for comparing
    weights step by step."""
    return type(tiny)(
        type(tiny.train)(tiny.train.images[:256], tiny.train.labels[:256]),
        tiny.val,
        tiny.test,
        tiny.source,
    )


@pytest.mark.parametrize(
    "opt, lrs, augment",
    [
        ("sgd", [0.05, 0.02, 0.1], "none"),
        ("adam", [3e-3, 1e-3, 2e-3], "small"),
        ("adamw", [3e-3, 3e-3, 3e-3], "none"),
    ],
)
def test_fused_matches_separate(tiny, opt, lrs, augment):
    cfgs = [
        TrainConfig(
            epochs=1,
            batch_size=64,
            optimizer=opt,
            lr=lr,
            momentum=0.9,
            weight_decay=1e-3 if opt == "adamw" else 0.0,
            augment=augment,
            schedule="onecycle" if opt == "adam" else "constant",
            reports_per_epoch=2,
            seed=seed,
        )
        for seed, lr in enumerate(lrs)
    ]
    fused = train_fused(SPEC, cfgs, tiny, keep_models=True, evaluate_test=False)
    for cfg, f in zip(cfgs, fused):
        alone = train(SPEC, cfg, tiny, keep_model=True, evaluate_test=False)
        assert len(f.history) == len(alone.history) == 2
        for (s1, v1), (s2, v2) in zip(f.history, alone.history):
            assert s1 == s2 and abs(v1 - v2) <= TOL_POINTS
        for (name, a), b in zip(f.model.state_dict().items(), alone.model.state_dict().values()):
            assert torch.allclose(a, b, atol=2e-3, rtol=1e-2), name


def test_first_steps_agree_closely(sub):
    """After a handful of steps the weights are the same to float32 rounding."""
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

    cfgs = [
        TrainConfig(batch_size=32, lr=lr, momentum=0.9, seed=0, reports_per_epoch=2)
        for lr in (0.05, 1e8, 0.05)
    ]
    out = train_fused(SPEC, cfgs, tiny, on_report=[None, None, prune])
    assert isinstance(out[1], Diverged) and isinstance(out[2], Pruned)
    assert out[0].val_accuracy > 40 and len(out[0].history) == 2  # learning: chance is 10%
    assert out[0].test_accuracy is not None


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return float((a - b).norm() / max(float(b.norm()), 1e-12))


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec", [BN, SEPARABLE, RESIDUAL, SHARED], ids=["bn", "separable", "residual", "shared"]
)
def test_default_space_nets_fuse_and_match_separate(tiny, spec):
    """Per-candidate recipes the default space varies inside a group: learning rate, weight
    decay, schedule, label smoothing, augmentation, Nesterov momentum, weight average, seed."""
    cfgs = [
        TrainConfig(
            epochs=1,
            batch_size=64,
            optimizer="sgd",
            lr=0.05,
            momentum=0.9,
            nesterov=True,
            weight_decay=5e-4,
            schedule="onecycle",
            ema=0.9,
            reports_per_epoch=2,
            seed=0,
        ),
        TrainConfig(
            epochs=1,
            batch_size=64,
            optimizer="sgd",
            lr=0.1,
            momentum=0.8,
            weight_decay=1e-5,
            schedule="cosine",
            label_smoothing=0.1,
            augment="small",
            reports_per_epoch=2,
            seed=1,
        ),
    ]
    fused = train_fused(spec, cfgs, tiny, keep_models=True)
    for cfg, f in zip(cfgs, fused):
        alone = train(spec, cfg, tiny, keep_model=True)
        assert [s for s, _ in f.history] == [s for s, _ in alone.history] == [0, 1]
        for (_, v1), (_, v2) in zip(f.history, alone.history):
            assert abs(v1 - v2) <= TOL_POINTS
        assert abs(f.test_accuracy - alone.test_accuracy) <= TOL_POINTS
        a, b = f.model.state_dict(), alone.model.state_dict()
        assert a.keys() == b.keys()
        for name in a:  # weights and BatchNorm running statistics alike
            # BatchNorm nets amplify summation-order rounding (1e-5 after one step) to a few
            # per mille of each tensor's norm in 10 steps; a candidate given another's recipe or
            # statistics is off by more than 100%.
            assert relative_error(a[name], b[name]) < 0.05, name


def test_adamw_bn_net_first_steps_agree_closely(sub):
    cfgs = [
        TrainConfig(batch_size=64, optimizer="adamw", lr=lr, weight_decay=wd, seed=s)
        for s, lr, wd in ((3, 3e-3, 0.05), (4, 1e-2, 1e-3))
    ]
    fused = train_fused(RESIDUAL, cfgs, sub, keep_models=True, evaluate_test=False)
    for cfg, f in zip(cfgs, fused):
        alone = train(RESIDUAL, cfg, sub, keep_model=True, evaluate_test=False)
        for a, b in zip(f.model.state_dict().values(), alone.model.state_dict().values()):
            assert torch.allclose(a.float(), b.float(), atol=1e-4, rtol=1e-3)


@pytest.mark.slow
def test_dropout_nets_fuse(tiny):
    """Dropout masks come from one stream, so the weights differ from separate runs; the
    learning must not."""
    spec = modern.build_spec(2, "same", [1, 1], [8, 8], dropout=0.1, head="flatten")
    cfgs = [TrainConfig(epochs=2, batch_size=32, lr=0.05, momentum=0.9, seed=s) for s in range(6)]
    fused = [f.val_accuracy for f in train_fused(spec, cfgs, tiny)]
    alone = [train(spec, cfg, tiny).val_accuracy for cfg in cfgs]
    # Other masks move one run by up to ~4 points on 500 images (measured: -4.0 … +1.8 over six
    # seeds); the mean of six runs moves by well under one point. A fused dropout that dropped
    # the wrong units, or whole candidates, would move the mean by more.
    assert min(alone) > 70
    assert abs(sum(fused) / 6 - sum(alone) / 6) < 1.5, (fused, alone)
    assert max(abs(a - b) for a, b in zip(fused, alone)) < 6, (fused, alone)


def test_unfusable_candidates_are_refused_with_a_reason(tiny):
    with pytest.raises(FusedError, match="must share batch_size"):
        train_fused(SPEC, [TrainConfig(batch_size=64), TrainConfig(batch_size=128)], tiny)
    with pytest.raises(FusedError, match="must share optimizer"):
        train_fused(BN, [TrainConfig(optimizer="sgd"), TrainConfig(optimizer="adamw")], tiny)
    for n in range(1, 7):
        check_fusable(get_experiment(n).spec, [TrainConfig()])  # the documented nets all fuse


@pytest.mark.slow
def test_stopped_candidates_leave_the_group_and_the_rest_go_on_unchanged(tiny):
    """A pruned candidate is cut out of the wide net (weights, momentum, average); the others
    end as separate runs do."""

    class Pruned(Exception):
        pass

    def prune(step, val):
        raise Pruned

    spec = RESIDUAL
    cfgs = [
        TrainConfig(
            epochs=1,
            batch_size=64,
            optimizer="sgd",
            lr=lr,
            momentum=0.9,
            nesterov=True,
            schedule="onecycle",
            ema=ema,
            reports_per_epoch=3,
            seed=seed,
        )
        for seed, lr, ema in ((0, 0.05, 0.9), (1, 0.08, 0.0), (2, 0.03, 0.9))
    ]
    fused = train_fused(spec, cfgs, tiny, on_report=[None, prune, None], keep_models=True)
    assert isinstance(fused[1], Pruned)
    for k in (0, 2):
        alone = train(spec, cfgs[k], tiny, keep_model=True)
        assert [s for s, _ in fused[k].history] == [0, 1, 2]
        assert abs(fused[k].val_accuracy - alone.val_accuracy) <= TOL_POINTS
        a, b = fused[k].model.state_dict(), alone.model.state_dict()
        for name in a:
            assert relative_error(a[name], b[name]) < 0.05, (k, name)


@pytest.mark.parametrize(
    "spec",
    [BN, SEPARABLE, RESIDUAL, SHARED, FACTORIZED, TINY],
    ids=["bn", "separable", "residual", "shared", "factorized", "tiny-leaky"],
)
def test_a_wide_net_computes_what_its_candidates_compute(spec):
    """One training step's outputs and gradients, candidate by candidate, to rounding: in double
    precision, because in float32 a max-pool's near-tie can fall the other way in the wide net."""
    import torch.nn.functional as F

    from mnist_search.net.model import build_model
    from mnist_search.training.wide import WideNet

    torch.manual_seed(0)
    nets = [build_model(spec).double().train() for _ in range(3)]
    wide = WideNet(nets).train()
    x, y = torch.randn(16, 1, 28, 28, dtype=torch.float64), torch.randint(0, 10, (16,))
    out = wide(x.repeat(1, 3, 1, 1))
    sum(F.nll_loss(out[:, k], y) for k in range(3)).backward()
    grads = dict(wide.named_parameters())
    for k, net in enumerate(nets):
        alone = net(x)
        assert torch.allclose(out[:, k], alone, atol=1e-9)
        F.nll_loss(alone, y).backward()
        for name, p in net.named_parameters():
            wide_grad = grads[name].grad.view(3, *p.shape)[k]
            assert torch.allclose(wide_grad, p.grad, atol=1e-9), name


@pytest.mark.parametrize("opt", ["sgd", "adamw"])
def test_channels_last_fuses_and_matches_separate(sub, opt):
    """CUDA trains in channels_last by default; its conv weights cannot be flattened per
    candidate as one [K, -1] view, so the optimizer and the weight average split the first
    dimension only. Forced here on the CPU: each candidate's weights after a few steps are its
    own separate run's in the same layout, to rounding."""
    lrs = (0.05, 0.02) if opt == "sgd" else (3e-3, 1e-3)
    cfgs = [
        TrainConfig(batch_size=64, optimizer=opt, lr=lr, momentum=0.9, ema=0.9, seed=s)
        for s, lr in enumerate(lrs)
    ]
    last = Speed(channels_last=True)
    fused = train_fused(BN, cfgs, sub, keep_models=True, evaluate_test=False, speed=last)
    for cfg, f in zip(cfgs, fused):
        alone = train(BN, cfg, sub, keep_model=True, evaluate_test=False, speed=last)
        for name, a in f.model.state_dict().items():
            # As above: grouped kernels round otherwise, and BatchNorm amplifies it; measured
            # after 4 steps: at most 2.5e-4 of a tensor's norm on 2 threads, 6.5e-3 on one (a
            # BatchNorm bias of about 1e-4). A candidate stepped with the other's learning rate
            # is off by over 200% in them.
            assert relative_error(a, alone.model.state_dict()[name]) < 0.02, name
