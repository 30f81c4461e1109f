"""The search spaces: every proposal fits its budget exactly, and the write-up's and the published
nets are points of them."""

import optuna
import pytest

from mnist_search.catalog.experiments import documented_experiments
from mnist_search.net.spec import count_params
from mnist_search.spaces.plain import (
    smallest_params,
    spec_params,
    suggest_spec,
    suggest_training,
    training_params,
)


@pytest.mark.parametrize("budget", [120, 1000, 5000, 25000])
def test_every_proposal_fits_the_budget(budget):
    """Feasible by construction: no proposal over budget, from the first trial on."""
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=budget)
    )
    counts = []

    def objective(trial):
        n = count_params(suggest_spec(trial, budget))
        suggest_training(trial)
        counts.append(n)
        return n / budget  # pushes the sampler towards the cap, the hardest case

    study.optimize(objective, n_trials=80)
    assert len(counts) == 80 and max(counts) <= budget
    # the space does reach the cap: within 3% of it (5% for the tiniest, where one channel is 4%)
    assert max(counts) >= (0.95 if budget < 200 else 0.97) * budget


def test_smallest_params():
    assert smallest_params() == 90


@pytest.mark.parametrize("exp", documented_experiments(), ids=lambda e: f"exp{e.id}")
def test_documented_experiments_are_points_of_the_space(exp):
    params = spec_params(exp.spec)
    params |= training_params(
        {"batch_size": exp.batch_size, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9}
    )
    trial = optuna.trial.FixedTrial(params)
    assert suggest_spec(trial, budget=10**6) == exp.spec
    assert suggest_training(trial)["batch_size"] == exp.batch_size


@pytest.mark.parametrize(
    "chans", [(8, 16, 32), (32, 16, 8), (16, 16, 16)], ids=["narrow-wide", "wide-narrow", "flat"]
)
def test_channel_progressions_are_reachable(chans):
    params = {
        "n_conv": 3,
        "kernel": 3,
        "padding": "valid",
        "pool1": False,
        "pool2": True,
        "pool3": True,
        "batchnorm": True,
        "head": "gap",
        "dropout": 0.1,
        "n_hidden": 1,
        "fc1": 32,
        **{f"ch{i}": c for i, c in enumerate(chans, start=1)},
    }
    spec = suggest_spec(optuna.trial.FixedTrial(params), budget=25000)
    assert tuple(c.out_channels for c in spec.convs) == chans


@pytest.mark.parametrize("budget", [300, 1000, 5000, 25000])
def test_modern_proposals_fit_the_budget_and_build(budget):
    from mnist_search.net.model import build_model, module_params
    from mnist_search.spaces import modern

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=budget)
    )
    kinds, counts = set(), []

    def objective(trial):
        spec = modern.suggest_spec(trial, budget)
        hp = modern.suggest_training(trial)
        n = count_params(spec)
        assert n == module_params(build_model(spec))
        kinds.update(l.kind for l in spec.convs)
        kinds.update("res" for l in spec.convs if l.residual)
        kinds.update("1x1" for l in spec.convs if l.kernel == 1)
        kinds.update("5x5" for l in spec.convs if l.kernel == 5)
        kinds.update("shared" for l in spec.convs if l.repeat > 1)
        kinds.update("squeeze" for l in spec.convs[-1:] if l.kernel == 1)
        kinds.update("hidden" for _ in spec.hidden)
        kinds.add(spec.head)
        # A sampled net reads back as the parameters that make it (warm starts rely on it).
        assert modern.SPACE.build(modern.spec_params(spec)) == spec
        assert hp["schedule"] in ("onecycle", "cosine")
        counts.append(n)
        return n / budget

    study.optimize(objective, n_trials=80)
    assert max(counts) <= budget and max(counts) >= 0.97 * budget
    if budget >= 5000:  # every kind of block is offered where the budget leaves room
        want = {"conv", "sep", "fact", "res", "1x1", "5x5", "gap", "shared", "hidden", "squeeze"}
        assert want <= kinds


def test_modern_build_spec_is_the_documented_shape():
    from mnist_search.net.spec import describe
    from mnist_search.spaces.modern import build_spec, smallest_params

    spec = build_spec(2, "same", [2, 2], [8, 16], separable=True, residual=True, transition=True)
    # conv 1→8, sep 8→8 (residual) + pool, 1×1 8→16, two residual sep 16→16 blocks, GAP, fc.
    assert describe(spec) == "1→8→8→16→16→16 k1/3 pad sep@2,4,5 res@2,4,5 pool@2 bn | gap fc 16→10"
    assert smallest_params() == count_params(build_spec(2, "same", [1, 1], [4, 4])) == 246


def test_unknown_space_is_refused():
    from mnist_search.net.spec import SpecError
    from mnist_search.spaces import get_space

    with pytest.raises(SpecError, match="space 'fancy'; valid: modern, tiny, plain"):
        get_space("fancy")


def test_the_published_shared_block_nets_are_points_of_the_space():
    """The 1,936/2,180-parameter nets of ruslangrimov/mnist-minimal-model: conv 8, pool, separable
    conv to 26, one separable 26→26 block used three times, GAP, dense 16, dense 10. Their nearest
    point of the modern space, and at width 25 a sampler can propose it under a 2,000 budget."""
    from mnist_search.net.spec import describe
    from mnist_search.spaces import modern
    from mnist_search.spaces.design import DesignTrial

    net = modern.build_spec(2, "same", [1, 4], [8, 26], separable=True, share=True, hidden=16)
    assert describe(net) == "1→8→26→26 k3 pad sep@2,3 pool@1 shared@3×3 bn | gap fc 26→16→10"
    assert count_params(net) == 2088
    narrower = modern.build_spec(2, "same", [1, 4], [8, 25], separable=True, share=True, hidden=16)
    assert count_params(narrower) == 1996
    params = modern.spec_params(narrower)
    assert params["share"] is True and params["hidden"] == 16 and params["blocks2"] == 4

    # The sampling code itself proposes it at budget 2,000 when asked for these choices.
    class Asked(DesignTrial):
        def suggest_categorical(self, name, choices):
            self.params[name] = params[name]
            return params[name]

        def suggest_int(self, name, low, high, *, log=False, step=1):
            assert low <= params[name] <= high, name
            self.params[name] = params[name]
            return params[name]

    assert modern.suggest_spec(Asked([0.5] * 48), 2000) == narrower
    # Without sharing, the same depth at these widths does not fit 2,000.
    unshared = modern.build_spec(2, "same", [1, 4], [8, 25], separable=True, hidden=16)
    assert count_params(unshared) > 2000


def test_the_published_shared_block_nets_are_points_of_the_space_with_their_padding():
    """Since ``modern-6``, their layout too: the first two blocks unpadded (28 → 26, pool 13,
    → 11; "valid2"), the shared block padded, dropout 0.1 after every block. What differs is
    only where a normalisation sits (after the ReLU there, and on the dense layer) and, with
    ``dropout``, one more dropout before the dense 16."""
    import torch

    from mnist_search.net.model import build_model, module_params
    from mnist_search.net.spec import conv_shapes, describe
    from mnist_search.spaces import modern

    def net(width):
        return modern.build_spec(
            2,
            "valid2",
            [1, 4],
            [8, width],
            separable=True,
            share=True,
            hidden=16,
            dropout=0.1,
            conv_dropout=0.1,
        )

    published = net(26)
    assert [(c.padding, c.repeat) for c in published.convs] == [(0, 1), (0, 1), (1, 3)]
    assert [s.size_out for s in conv_shapes(published)] == [13, 11, 11]
    assert describe(published) == (
        "1→8→26→26 k3 pad@3 sep@2,3 pool@1 shared@3×3 bn convdrop0.1 drop0.1 | gap fc 26→16→10"
    )
    # 2,180 there: 2,088 here (no conv biases under BatchNorm, BatchNorm's shift not counted
    # twice) + 92 of their BatchNorm on the dense layer and conv biases.
    assert count_params(published) == module_params(build_model(published)) == 2088
    at_2000 = net(25)
    assert count_params(at_2000) == 1996
    params = modern.spec_params(at_2000)
    assert params["padding"] == "valid2" and params["conv_dropout"] == 0.1
    assert modern.suggest_spec(Asked(params), 2000) == at_2000
    out = build_model(at_2000).eval()(torch.zeros(2, 1, 28, 28))
    assert out.shape == (2, 10)


@pytest.mark.parametrize("padding", ["same", "valid", "valid2"])
@pytest.mark.parametrize("stages,blocks", [(2, [3, 4]), (3, [3, 1, 1]), (3, [1, 3, 1])])
def test_every_padding_round_trips_and_shares_only_shape_keeping_blocks(padding, stages, blocks):
    from mnist_search.net.spec import conv_shapes
    from mnist_search.spaces import modern

    widths = [8, 12, 16][:stages]
    spec = modern.build_spec(stages, padding, blocks, widths, share=True, residual=True)
    for shape, c in zip(conv_shapes(spec), spec.convs):
        if c.repeat > 1 or c.residual:  # only a block that keeps its input's shape
            assert c.padding == c.kernel // 2 and shape.in_channels == c.out_channels
    pads = [c.padding for c in spec.convs]
    if padding == "valid2":
        assert pads[:2] == [0, 0] and all(pads[2:])
    assert modern.spec_params(spec)["padding"] == padding
    assert modern.build(modern.spec_params(spec)) == spec


class Asked:
    """A stand-in trial that answers the sampling code's questions from ``params`` and checks
    each answer is within the range the code offers at that budget."""

    def __init__(self, params):
        self.params, self.wanted = {}, params

    def suggest_categorical(self, name, choices):
        assert self.wanted[name] in choices, name
        self.params[name] = self.wanted[name]
        return self.params[name]

    def suggest_int(self, name, low, high, *, log=False, step=1):
        value = self.wanted[name]
        assert low <= value <= high and (value - low) % step == 0, name
        self.params[name] = value
        return value


@pytest.mark.parametrize(
    "factorize, published, ours",
    [(True, 4142, 4082), (False, 4862, 4818)],
)
def test_the_published_squeeze_nets_are_points_of_the_space(factorize, published, ours):
    """The 4,142/4,862-parameter nets of ruslangrimov/mnist-minimal-model: conv 8, pool, conv 16,
    pool, a 3×3 conv 16→16 (in the 4,142 net a 3×1 then a 1×3), a 1×1 squeeze to 4 channels,
    flatten, dense 24, dense 10, all 'valid', a BatchNorm after every conv. Their counts here
    differ only by the conv biases they keep under BatchNorm: 8 + 16 + 16 (+ 16) + 4."""
    from mnist_search.net.spec import describe
    from mnist_search.spaces import modern

    net = modern.build_spec(
        3,
        "valid",
        [1, 1, 1],
        [8, 16, 16],
        factorize=factorize,
        head="flatten",
        squeeze=4,
        hidden=24,
        dropout=0.1,
        conv_dropout=0.1,  # theirs: 0.1 after every layer (modern-6)
    )
    fact = "fact@3 " if factorize else ""
    assert describe(net) == (
        f"1→8→16→16→4 k1/3 {fact}pool@1,2 bn convdrop0.1 drop0.1 | fc 36→24→10"
    )
    assert count_params(net) == ours
    assert published - ours == (60 if factorize else 44)
    params = modern.spec_params(net)
    assert params["squeeze"] == 4 and params["factorize"] is factorize
    # The sampling code itself proposes it at budget 5,000 when asked for these choices.
    assert modern.suggest_spec(Asked(params), 5000) == net
