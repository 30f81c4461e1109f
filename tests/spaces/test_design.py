"""The space-filling start-up design: a Latin hypercube through each space's own sampler."""

from __future__ import annotations

import warnings

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnist_search.net.model import build_model, module_params
from mnist_search.net.spec import count_params
from mnist_search.spaces import modern
from mnist_search.spaces.design import DesignTrial, latin_hypercube
from mnist_search.spaces.modern import BUDGET_USED, compute, design_macs, top_up
from mnist_search.training.loop import TrainConfig


def test_latin_hypercube_puts_one_point_in_each_slice_of_every_axis():
    x = latin_hypercube(8, 5, seed=3)
    assert x.shape == (8, 5) and ((0 <= x) & (x < 1)).all()
    for column in x.T:
        assert sorted((column * 8).astype(int)) == list(range(8))


def test_a_design_trial_answers_inside_each_distribution():
    t = DesignTrial([0.0, 0.999, 0.5, 0.25])
    assert t.suggest_int("a", 4, 96, log=True) == 4
    assert t.suggest_categorical("b", ("x", "y", "z")) == "z"
    assert 0.02 < t.suggest_float("c", 0.02, 1.0, log=True) < 1.0
    assert t.suggest_int("d", 1, 3) == 1
    assert t.suggest_int("a", 4, 96, log=True) == 4  # the same name, the same column
    with pytest.raises(IndexError, match="one more"):
        t.suggest_int("e", 1, 2)


@settings(max_examples=40, deadline=None)
@given(budget=st.integers(300, 60_000), seed=st.integers(0, 2**31 - 1))
def test_every_design_point_is_a_point_of_the_space_under_the_budget(budget, seed):
    """Exact counting for the design: each point's net counts as built, fits the budget and the
    compute bound, and its parameters replay through the space's own sampler (so TPE can learn
    from it)."""
    points = modern.startup_design(budget, 4, seed)
    assert len(points) == 4
    for params in points:
        spec = modern.build(params)
        n = count_params(spec)
        assert n <= budget and compute(spec) <= design_macs(budget)
        # 60-100% of the budget, unless no stage can grow by a channel within both bounds
        full = top_up(params, budget, design_macs(budget)) == params
        assert n >= BUDGET_USED[0] * budget or full, (n, params)
        assert module_params(build_model(spec)) == n
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a value outside its distribution would warn
            fixed = optuna.trial.FixedTrial(params)
            assert modern.suggest_spec(fixed, budget) == spec
            hp = modern.suggest_training(fixed)
        TrainConfig(**hp)  # a valid recipe
        assert hp["schedule"] == "onecycle" and hp["batch_size"] == 128  # the recipe prior


def test_the_design_fills_the_budget_as_its_compute_allows_and_covers_the_choices():
    """60-100% of the budget, as the docs say, unless the compute bound stops a net sooner; at
    25,000 the design's nets cost at most 2.5 million multiply-adds (they drew up to 12.7)."""
    assert design_macs(1000) == design_macs(10_000) == 1_000_000
    assert design_macs(25_000) == 2_500_000
    for budget in (1000, 2000, 5000, 10_000, 25_000):
        for seed in range(6):
            points = modern.startup_design(budget, 8, seed)
            for p in points:
                net = modern.build(p)
                assert count_params(net) <= budget and compute(net) <= design_macs(budget)
                full = top_up(p, budget, design_macs(budget)) == p
                assert count_params(net) >= 0.6 * budget or full, (budget, seed, p)
    points = modern.startup_design(25_000, 8, seed=1)
    for name in ("stages", "separable", "head", "optimizer"):
        assert len({p[name] for p in points}) == 2, name  # both options of each appear
    assert points == modern.startup_design(25_000, 8, seed=1)  # fixed by the seed
    assert points != modern.startup_design(25_000, 8, seed=2)
