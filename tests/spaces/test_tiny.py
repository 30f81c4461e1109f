"""The tiny space: the published 697- and 997-parameter nets are points of it at their exact
counts, and every proposal fits its budget exactly, whatever its norm and activation."""

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnist_search.net.model import build_model, module_params
from mnist_search.net.spec import ArchSpec, SpecError, count_params, describe
from mnist_search.spaces import get_space, tiny

# JoshWarn/Parameter-Efficient-MNIST: 997_99.05.py (Conv2D 7, pool, SeparableConv2D 10, 10, 11,
# 12 valid, LeakyReLU 0.2, Dropout 0.1, GAP, Dense 10) and the weights of 697_mnist_0.9903.h5
# (the same layers at 6; 5, 9, 10, 8).
PUBLISHED = {997: [7, 10, 10, 11, 12], 697: [6, 5, 9, 10, 8]}


@pytest.mark.parametrize("count", sorted(PUBLISHED))
def test_the_published_tiny_nets_are_points_of_the_space_at_their_counts(count):
    spec = tiny.build_spec(PUBLISHED[count], norm="none", activation="leaky", conv_dropout=0.1)
    assert count_params(spec) == count == module_params(build_model(spec))
    params = tiny.spec_params(spec)
    assert params["norm"] == "none" and params["activation"] == "leaky"
    assert tiny.build(params) == spec
    assert "leaky" in describe(spec) and "bn" not in describe(spec)
    # Through the registry, with a recipe: an ordinary trial the sampler learns from.
    space = get_space("tiny")
    hp = {"batch_size": 128, "optimizer": "adamw", "lr": 0.01, "weight_decay": 1e-6}
    assert space.params_of(spec, hp | {"schedule": "onecycle"}) is not None


def test_nets_outside_the_space_are_refused():
    from mnist_search.net.spec import ConvLayer

    padded = ArchSpec((ConvLayer(7, 3, 1, pool=True), *tiny.smallest_net().convs[1:]))
    for spec in (padded, get_space("modern").smallest_net()):
        with pytest.raises(SpecError, match="not a net of the tiny space"):
            tiny.spec_params(spec)


@settings(max_examples=40, deadline=None)
@given(budget=st.integers(tiny.SPACE.smallest_params(), 30_000), seed=st.integers(0, 10**6))
def test_every_proposal_fits_the_budget_and_round_trips(budget, seed):
    """Random trials (norm, activation, depth and widths drawn): never over the budget, each
    rebuilt from its parameters, and the model has the counted parameters."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    trial = study.ask()
    spec = tiny.suggest_spec(trial, budget)
    assert count_params(spec) <= budget
    params = tiny.spec_params(spec)
    # A choice with one feasible value is not asked (``pick``): the trial holds the others.
    assert tiny.build(params) == spec and trial.params.items() <= params.items()
    assert module_params(build_model(spec)) == count_params(spec)


@pytest.mark.parametrize("budget", [1000, 2000, 5000])
def test_the_space_reaches_the_cap(budget):
    """Pushed towards the cap by TPE, proposals come within 3% of it and never over."""
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=budget)
    )
    counts = []

    def objective(trial):
        counts.append(count_params(tiny.suggest_spec(trial, budget)))
        return counts[-1] / budget

    study.optimize(objective, n_trials=60)
    assert max(counts) <= budget and max(counts) >= 0.97 * budget


@pytest.mark.parametrize("budget", [2000, 5000])
def test_fit_widths_fits_a_published_net_to_a_budget(budget):
    p = tiny.spec_params(tiny.build_spec(PUBLISHED[997], norm="none", activation="leaky"))
    fitted = tiny.fit_widths(p, budget)
    assert fitted is not None and 0.9 * budget <= count_params(tiny.build(fitted)) <= budget
    assert tiny.fit_widths(p, 100) is None


def test_below_the_smallest_net_is_refused():
    study = optuna.create_study()
    with pytest.raises(SpecError, match="no net of the tiny space fits 200"):
        tiny.suggest_spec(study.ask(), 200)
