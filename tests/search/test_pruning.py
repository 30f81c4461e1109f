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


def test_a_net_too_slow_for_the_search_is_stopped_once_its_speed_is_known(mnist):
    """A candidate whose whole training would take more than SLOW_SHARE of the search's time is
    pruned at the first report after DEAD_AFTER images, with its projected time; the same net in
    a longer search, or outside one, trains to its end."""
    from mnist_search.catalog.experiments import get_experiment
    from mnist_search.data.dataset import make_splits
    from mnist_search.search.objective import DEAD_AFTER, SLOW_SHARE, Objective
    from mnist_search.search.records import TrialRecord, queued

    protocol = Protocol(epochs=1, train_subset=2 * DEAD_AFTER, val_size=1000)
    splits = make_splits(mnist, "cpu", val_size=1000, train_subset=2 * DEAD_AFTER)
    fixed = queued(
        fixed_spec=get_experiment(3).spec.to_dict(),
        fixed_training={"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "batch_size": 64},
    )
    states = {}
    # 20,000 images of a 4,418-parameter net take well over 0.1 s and well under 10,000 s.
    for seconds in (0.8, 80_000.0, None):
        study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
        study.enqueue_trial({}, user_attrs=fixed)
        objective = Objective(
            None, protocol, splits, space="plain", prune_dead=True, search_seconds=seconds
        )
        study.optimize(objective, n_trials=1)
        states[seconds] = TrialRecord.of(study.trials[0])
    slow = states[0.8]
    assert slow.state == TrialState.PRUNED, slow
    # 16 reports of 1,250 images: the eighth is the first after 10,000
    assert slow.pruned_reason.startswith("too slow: "), slow.pruned_reason
    assert slow.pruned_reason.endswith(f"({SLOW_SHARE:.3g} of the search) at step 7")
    assert states[80_000.0].state == TrialState.COMPLETE
    assert states[None].state == TrialState.COMPLETE
    # A warm start, a known net the search starts from, is never stopped for its time.
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    study.enqueue_trial({}, user_attrs=fixed | queued(warm_start="found/x.json"))
    study.optimize(
        Objective(None, protocol, splits, space="plain", prune_dead=True, search_seconds=0.8),
        n_trials=1,
    )
    assert study.trials[0].state == TrialState.COMPLETE


def test_a_longer_trial_is_judged_on_its_epoch_not_its_whole_training(mnist):
    """With trials of several epochs (``--epochs N``) a net is too slow only if one epoch would
    take more than SLOW_SHARE of the search: its whole training may take longer, or a search of
    long trials stops every net and leaves its final stage nothing to retrain."""
    from mnist_search.catalog.experiments import get_experiment
    from mnist_search.data.dataset import make_splits
    from mnist_search.search.objective import SLOW_SHARE, Objective
    from mnist_search.search.records import TrialRecord, queued

    splits = make_splits(mnist, "cpu", val_size=1000, train_subset=12_000)
    fixed = queued(
        fixed_spec=get_experiment(3).spec.to_dict(),
        fixed_training={"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "batch_size": 64},
    )

    def trial(epochs: int, seconds: float | None) -> TrialRecord:
        protocol = Protocol(epochs=epochs, train_subset=12_000, val_size=1000)
        study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
        study.enqueue_trial({}, user_attrs=fixed)
        objective = Objective(
            None, protocol, splits, space="plain", prune_dead=False, search_seconds=seconds
        )
        study.optimize(objective, n_trials=1)
        return TrialRecord.of(study.trials[0])

    # One epoch judged 16 times: slower than an epoch of the 8-epoch training, judged once.
    first = trial(1, None)
    assert first.state == TrialState.COMPLETE, first
    epoch = first.train_seconds or first.seconds
    # A search whose quarter is 3 epochs: the 8-epoch training is longer, its epoch is not.
    assert trial(8, 3 * epoch / SLOW_SHARE).state == TrialState.COMPLETE
    slow = trial(8, 0.3 * epoch / SLOW_SHARE)
    assert slow.state == TrialState.PRUNED
    assert slow.pruned_reason.startswith("too slow: ") and " s an epoch" in slow.pruned_reason
