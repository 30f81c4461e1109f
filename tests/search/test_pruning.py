"""Spending less on bad candidates: rung pruning from 1/16 epoch and successive halving."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from mnist_search.search.pruning import RungPruner
from mnist_search.training.protocol import Protocol


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


def test_successive_halving_keeps_the_best_third_at_each_rung():
    """--pruner sha: rungs at one epoch's reports, then ×3; a trial below the best third of its
    rung stops there."""
    from mnist_search.search.study import make_pruner
    from mnist_search.training.protocol import Protocol

    pruner = make_pruner("sha", Protocol(epochs=9, val_size=5000))
    assert isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner)
    study = optuna.create_study(
        direction="maximize", pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0)
    )
    stopped = {}
    # One curve per trial: a start and a slope per epoch; the last starts best and falls.
    curves = [(90, 0.1), (95, 0.1), (91, 0.1), (96, 0.1), (92, 0.1), (97, 0.1), (93, 0.1)]
    curves += [(98, 0.1), (94, 0.1), (99.5, -1.0)]
    for start, slope in curves:
        trial = study.ask()
        for step in range(9):
            trial.report(start + slope * step, step)
            if trial.should_prune():
                stopped[start] = step
                break
        if start in stopped:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, start + slope * 8)
    # Rung 1 (step 1, one epoch): a trial goes on only in the best third of the values reached
    # there so far (while fewer than three are, only the best): 91, 92, 93 and 94 each arrive
    # below it. Rung 2 (step 3): the falling curve is third of the six there, not in the best
    # two. The first trial goes on: alone at its rungs, it is the best there.
    assert stopped == {91: 1, 92: 1, 93: 1, 94: 1, 99.5: 3}
