"""The parts of the search that spend less on bad candidates: rung pruning from 1/16 epoch, the
space-filling start-up design with its recipe prior, and the cheap interim validation."""

from __future__ import annotations

import warnings

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from mnist_search.net.model import build_model, module_params
from mnist_search.net.spec import count_params
from mnist_search.search.pruning import RungPruner
from mnist_search.spaces import modern
from mnist_search.spaces.design import DesignTrial, latin_hypercube
from mnist_search.training.loop import TrainConfig, train
from mnist_search.training.protocol import Protocol
from mnist_search.training.steps import INTERIM_VAL, interim


def test_rungs_sit_at_a_sixteenth_a_quarter_and_whole_epochs():
    assert RungPruner(16, 16).rungs() == [0, 3]  # one epoch: its end is no rung
    assert RungPruner(16, 160).rungs() == [0, 3, 15, 63]  # ten epochs
    assert RungPruner(4, 100).rungs() == [0, 3, 15, 63]  # 1/4 epoch is its first report
    assert RungPruner(1, 100).rungs() == [0, 3, 15, 63]  # once per epoch: epochs 1, 4, 16, 64
    assert Protocol().reports == 16 and Protocol(epochs=3).reports == 1
    assert Protocol().reports_for(20) == 1  # a long final retraining is judged once per epoch


def _study_with(values_at_step0: list[float]) -> optuna.Study:
    study = optuna.create_study(direction="maximize", pruner=RungPruner(16, 16))
    for v in values_at_step0:
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                value=v,
                params={"x": 0.5},
                distributions={"x": FloatDistribution(0, 1)},
                intermediate_values={0: v, 3: v},
            )
        )
    return study


def _judged(study: optuna.Study, value: float, step: int = 0) -> bool:
    trial = study.ask()
    trial.report(value, step)
    pruned = trial.should_prune()
    study.tell(
        trial,
        state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
        values=None if pruned else value,
    )
    return pruned


def test_a_trial_goes_on_only_in_the_best_third_of_its_rung():
    study = _study_with([90, 91, 92, 93, 94, 95])  # trial numbers 0..5; the next is 6 (bracket 0)
    assert _judged(study, 92.5)  # 7 at the rung: it must be in the best 3 (it is 5th)
    study = _study_with([90, 91, 92, 93, 94, 95])
    assert not _judged(study, 93.5)  # 3rd: kept
    study = _study_with([90, 91, 92, 93, 94, 95])
    assert not _judged(study, 94.5)
    # Between rungs nobody is judged.
    study = _study_with([90, 91, 92, 93, 94, 95])
    assert not _judged(study, 10.0, step=1)


def test_the_first_trials_and_the_second_bracket_are_not_judged_at_the_first_rung():
    assert not _judged(_study_with([90, 91]), 50.0)  # two others: too few to compare
    study = _study_with([90, 91, 92, 93, 94])  # the next trial is number 5: bracket 1
    assert not _judged(study, 50.0, step=0)
    study = _study_with([90, 91, 92, 93, 94])
    assert _judged(study, 50.0, step=3)  # ... judged at its first rung, 1/4 epoch


def test_rung_pruner_refuses_bad_settings():
    with pytest.raises(ValueError, match="keep=0"):
        RungPruner(16, 16, keep=0)


def test_a_trial_is_never_pruned_at_its_last_report():
    study = _study_with([90, 91, 92, 93, 94, 95])
    for t in study.trials:
        assert t.intermediate_values  # they reported at steps 0 and 3
    trial = study.ask()
    trial.report(50.0, 15)
    assert not trial.should_prune()


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


@settings(max_examples=25, deadline=None)
@given(budget=st.integers(300, 60_000), seed=st.integers(0, 2**31 - 1))
def test_every_design_point_is_a_point_of_the_space_under_the_budget(budget, seed):
    """Exact counting for the design: each point's net counts as built, fits the budget, and
    its parameters replay through the space's own sampler (so TPE can learn from it)."""
    for params in modern.startup_design(budget, 4, seed):
        spec = modern.build(params)
        n = count_params(spec)
        assert n <= budget
        assert module_params(build_model(spec)) == n
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a value outside its distribution would warn
            fixed = optuna.trial.FixedTrial(params)
            assert modern.suggest_spec(fixed, budget) == spec
            hp = modern.suggest_training(fixed)
        TrainConfig(**hp)  # a valid recipe
        assert hp["schedule"] == "onecycle" and hp["batch_size"] == 128  # the recipe prior


def test_the_design_fills_most_of_the_budget_and_covers_the_choices():
    points = modern.startup_design(25_000, 8, seed=1)
    shares = [count_params(modern.build(p)) / 25_000 for p in points]
    assert min(shares) >= 0.55 and max(shares) <= 1.0
    for name in ("stages", "separable", "head", "optimizer"):
        assert len({p[name] for p in points}) == 2, name  # both options of each appear
    assert points == modern.startup_design(25_000, 8, seed=1)  # fixed by the seed
    assert points != modern.startup_design(25_000, 8, seed=2)


def test_reports_inside_an_epoch_judge_a_sample_and_its_end_all_of_it(small_splits):
    import torch

    from mnist_search.data.mnist import Split
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
