"""The final stage's pieces that need no training: the time it reserves, the spec file, the incumbent."""

import json

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from mnist_search.search.final import Candidate, write_spec_file
from mnist_search.search.final_time import LeaveTimeForFinal
from mnist_search.spaces.modern import build_spec
from mnist_search.stopping import Deadline, StopToken


def _study_with(seconds_by_value):
    study = optuna.create_study(direction="maximize")
    for value, seconds in seconds_by_value.items():
        study.add_trial(
            create_trial(
                value=value,
                params={"x": 0.5},
                distributions={"x": FloatDistribution(0, 1)},
                user_attrs={"seconds": seconds, "n_params": 100},
            )
        )
    return study


def test_search_stops_when_the_time_left_is_what_the_final_stage_needs():
    study = _study_with({99.0: 4.0, 98.0: 10.0, 97.0: 100.0})
    # top 2 (4 s and 10 s at 2 epochs) × 20 epochs / 2 × 3 seeds × 1.25 margin = 525 s
    token = StopToken()
    reserve = LeaveTimeForFinal(
        Deadline.after(1000),
        top=2,
        seeds=3,
        search_epochs=2,
        final_epochs=20,
        min_trials=1,
        stop=token,
    )
    assert reserve.estimate(study) == pytest.approx(525.0)
    reserve(study, study.trials[-1])
    assert token.room_left is None and not token.stopped
    late = LeaveTimeForFinal(
        Deadline.after(500),
        top=2,
        seeds=3,
        search_epochs=2,
        final_epochs=20,
        min_trials=1,
        stop=token,
    )
    late(study, study.trials[-1])  # outside optimize: sets the token, does not raise
    assert token.room_left == pytest.approx(500, abs=5) and token.stopped
    assert token.signal is None  # making room is not an interrupt: nothing raises
    token.check()

    calls = []

    def objective(trial):
        calls.append(trial.number)
        trial.set_user_attr("seconds", 100.0)
        return trial.suggest_float("x", 0, 1)

    fresh = optuna.create_study(direction="maximize")
    fresh.optimize(
        objective,
        n_trials=20,
        callbacks=[
            LeaveTimeForFinal(Deadline.after(600), top=1, seeds=3, search_epochs=1, final_epochs=2)
        ],
    )
    # 100 s × 2 × 3 × 1.25 = 750 s needed, 600 s left: it stops, but not before 5 trials.
    assert len(calls) == 5
    assert fresh.trials[0].state == TrialState.COMPLETE


def test_time_set_lengths_weigh_validation_against_the_length_each_net_can_afford():
    from mnist_search.search.final_time import final_lengths

    # one-epoch trials: a slow net ahead on validation, a net six times faster just behind
    study = _study_with({98.5: 130.0, 98.3: 20.0, 97.0: 15.0, 90.0: 1.0})
    # 600 s for one retraining, 20% margin: 500 s, so 3 epochs for the slow net, 25 for the fast
    # one; expected errors 1.5 × 3^-0.1 = 1.34% and 1.7 × 25^-0.1 = 1.23%: the fast one
    assert final_lengths(study, top=1, seeds=1, search_epochs=1, seconds_left=600) == {1: 25}
    # further behind (2.0% error: 1.45%), the fast net no longer makes up for it
    behind = _study_with({98.5: 130.0, 98.0: 20.0, 97.0: 15.0, 90.0: 1.0})
    assert final_lengths(behind, top=1, seeds=1, search_epochs=1, seconds_left=600) == {0: 3}
    two = final_lengths(study, top=2, seeds=2, search_epochs=1, seconds_left=600)
    # 125 s per retraining: 1, 6, 8 and 40 epochs (the cap), expected errors 1.5%, 1.42%,
    # 2.43% and 10 × 40^-0.1 = 6.9%: a fast but poor net is not extrapolated past the cap
    assert two == {1: 6, 0: 1}
    # with all the time in the world every net gets the cap, and validation decides
    assert final_lengths(study, top=1, seeds=1, search_epochs=1, seconds_left=1e9) == {0: 40}


def test_a_final_epoch_is_its_trials_training_and_one_validation():
    from mnist_search.search.final_time import epoch_seconds, final_lengths
    from mnist_search.search.records import TrialRecord

    # Measured on the CPU: a one-epoch trial of 36.4 s wall, 31.3 s of it training and the rest
    # sixteen validations and start-up; its final runs took 31.3 s an epoch, validation included.
    timing = {"seconds": 36.4, "train_seconds": 31.3, "training": {"reports_per_epoch": 16}}
    trial = TrialRecord(0, TrialState.COMPLETE, 99.1, **timing)
    assert epoch_seconds(trial, 1) == pytest.approx(31.3 + 5.1 / 16)
    # A final run validates once an epoch: its own wall time per epoch.
    run = TrialRecord(0, TrialState.COMPLETE, 99.46, seconds=594.0, train_seconds=577.7, epochs=19)
    assert epoch_seconds(run, 19) == pytest.approx(594.0 / 19)
    # No training time recorded: the wall time.
    assert epoch_seconds(TrialRecord(0, TrialState.COMPLETE, 99.1, seconds=36.4), 1) == 36.4

    study = optuna.create_study(direction="maximize")
    study.add_trial(
        create_trial(
            value=99.1,
            params={"x": 0.5},
            distributions={"x": FloatDistribution(0, 1)},
            user_attrs={**timing, "n_params": 100},
        )
    )
    # 2,520 s for 3 runs with a 20% margin: 700 s a run, 22 epochs at 31.6 s (by the wall time,
    # 36.4 s an epoch, 19: that run's stage used 67% of its time).
    assert final_lengths(study, top=1, seeds=3, search_epochs=1, seconds_left=2520) == {0: 22}


def test_spec_file_is_written_whole(tmp_path):
    spec = build_spec(2, "same", [1, 1], [4, 8])
    cand = Candidate(
        3,
        400,
        "x",
        spec.to_dict(),
        {"optimizer": "adamw", "lr": 0.01},
        [0, 1],
        [98.0, 98.2],
        [98.1, 98.3],
    )
    path = tmp_path / "out" / "best.json"
    write_spec_file(path, cand, 20, {"budget": 500})
    body = json.loads(path.read_text())
    assert body["epochs"] == 20 and body["source_trial"] == 3 and body["budget"] == 500
    assert body["result"]["test_mean"] == pytest.approx(98.2)
    assert not list(path.parent.glob("*.tmp"))


def test_the_incumbent_is_a_finalist_beside_the_best_ones():
    """With ``incumbent`` the best warm-start trial is retrained too, sharing the time, even
    when its one-epoch validation ranks it below every finalist."""
    from mnist_search.search.final_time import final_lengths, incumbent

    study = _study_with({98.5: 10.0, 98.3: 10.0})
    for value, seconds, where in ((97.0, 10.0, "found/a.json"), (96.0, 5.0, "found/b.json")):
        study.add_trial(
            create_trial(
                value=value,
                params={"x": 0.5},
                distributions={"x": FloatDistribution(0, 1)},
                user_attrs={"seconds": seconds, "n_params": 100, "warm_start": where},
            )
        )
    assert incumbent(study).number == 2  # the better of the two warm starts
    # 1,200 s, one finalist: 1,000 s with the margin, 100 epochs, capped at 40.
    assert final_lengths(study, top=1, seeds=1, search_epochs=1, seconds_left=1200) == {0: 40}
    # With the incumbent: two retrainings share it, 500 s each: still the cap.
    both = final_lengths(study, 1, 1, 1, seconds_left=1200, incumbent=True)
    assert both == {0: 40, 2: 40}
    # Tighter time: 120 s for two runs, 50 s each (5 epochs at 10 s), the finalist first.
    assert list(final_lengths(study, 1, 1, 1, seconds_left=120, incumbent=True).items()) == [
        (0, 5),
        (2, 5),
    ]
    # Already a finalist: not retrained twice.
    assert final_lengths(study, 3, 1, 1, seconds_left=1e9, incumbent=True).keys() == {0, 1, 2}
    # No warm start in the study: the finalists alone.
    plain = _study_with({98.5: 10.0})
    assert incumbent(plain) is None
    assert final_lengths(plain, 1, 1, 1, seconds_left=1200, incumbent=True) == {0: 40}


def test_an_incumbent_that_is_a_finalist_takes_no_second_share_of_the_time():
    """The best warm start is also the best candidate: one finalist, retrained once, so it gets
    the whole time (120 s / 1.2 margin / 10 s an epoch = 10 epochs), not half of it."""
    from mnist_search.search.final_time import final_lengths, incumbent

    study = _study_with({98.3: 10.0})
    study.add_trial(
        create_trial(
            value=98.5,
            params={"x": 0.5},
            distributions={"x": FloatDistribution(0, 1)},
            user_attrs={"seconds": 10.0, "n_params": 100, "warm_start": "found/a.json"},
        )
    )
    assert incumbent(study).number == 1
    assert final_lengths(study, 1, 1, 1, seconds_left=120, incumbent=True) == {1: 10}
    # Two finalists, the incumbent one of them: two runs share the time, 5 epochs each.
    assert final_lengths(study, 2, 1, 1, seconds_left=120, incumbent=True) == {1: 5, 0: 5}
