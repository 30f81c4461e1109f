"""The warm start: shipped nets fitted to any budget, smaller budgets' nets widened, the write-up's
experiments queued where they fit."""

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from mnist_search.catalog.experiments import get_experiment
from mnist_search.cli.app import app
from mnist_search.net.spec import count_params
from mnist_search.search.storage import open_storage
from mnist_search.search.warmstart import documented_params
from mnist_search.search.warmstart import warm_start_documented as warm_start

# The shipped set as of 2026-12-06, kept here so these tests do not change with each shipped run.
KNOWN = Path(__file__).parent / "known_nets"


@pytest.mark.parametrize("budget", [700, 2000, 3000, 25000, 60000])
def test_shipped_nets_are_fitted_to_any_budget(budget):
    from mnist_search.search import warmstart as known
    from mnist_search.spaces import modern

    for net in known.known_nets() + known.known_nets(KNOWN):
        base = modern.spec_params(net.spec)
        params = modern.fit_widths(base, budget)
        if params is None:  # not even at the narrowest widths
            narrow = dict(
                base, **{f"width{s}": modern.WIDTH[0] for s in range(1, base["stages"] + 1)}
            )
            assert count_params(modern.build(narrow)) > budget
            continue
        n = count_params(modern.build(params))
        assert n <= budget
        widths = [params[f"width{s}"] for s in range(1, params["stages"] + 1)]
        # filled: one more step of the common factor would not fit, unless every width is capped
        if max(widths) < modern.WIDTH[1]:
            grown = dict(
                params, **{f"width{s}": w + max(1, w // 8) for s, w in enumerate(widths, start=1)}
            )
            assert count_params(modern.build(grown)) > budget * 0.97
        if net.budget == budget:
            assert n >= count_params(net.spec)  # never smaller than the net as shipped


def test_warm_start_found_queues_the_nearest_once():
    from mnist_search.search.warmstart import known_nets, warm_start_known

    study = optuna.create_study(direction="maximize")
    lines = warm_start_known(study, 2000, "modern", known_nets(KNOWN))
    # the nearest budget first, the better validated of the three found there first
    assert [l.split()[2] for l in lines] == ["found/shared-2000.json", "found/cpu-budget-2000.json"]
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == 2
    shared = waiting[0].system_attrs["fixed_params"]
    assert shared["share"] and shared["width2"] == 25  # at its own budget: as shipped, 1,996 p.
    study.tell(study.ask(), 1.0)
    study.tell(study.ask(), 2.0)
    again = warm_start_known(study, 2000, "modern", known_nets(KNOWN))
    assert all("already in the study" in l for l in again)
    assert (
        "plain space cannot fit a known net"
        in warm_start_known(study, 2000, "plain", known_nets(KNOWN))[0]
    )


def test_warm_start_prefers_nets_found_at_the_final_length():
    """A one-epoch search queues the nets found for one epoch; a longer or automatic final stage
    the best validated ones (accuracies after 1 and 15 epochs do not compare)."""
    from mnist_search.search.warmstart import known_nets, warm_start_known

    def queued(length):
        study = optuna.create_study(direction="maximize")
        return [
            l.split()[2]
            for l in warm_start_known(study, 25000, "modern", known_nets(KNOWN), length=length)
        ]

    assert queued(1) == ["found/onepoch-25000-batch32.json", "found/onepoch-25000.json"]
    best = ["found/cpu-budget-25000.json", "found/budget-25000.json"]  # 15 epochs, 99.47% val
    assert queued(None) == queued(15) == best
    assert queued(20) == best[::-1]  # found for 20 epochs, 99.20% val


def test_nets_found_at_smaller_budgets_are_queued_widened(tmp_path):
    """A folder of spec files (a frontier's results): the net of the nearest smaller budget is
    queued, widened, once; larger budgets' nets and files that are not specs are left out."""
    import shutil

    from mnist_search.search import records
    from mnist_search.search.warmstart import warm_start

    for b in (1000, 2000, 10000):
        shutil.copy(KNOWN / f"budget-{b}.json", tmp_path / f"budget-{b}.json")
    (tmp_path / "budget-3000.json").write_bytes(b"\xff\xfe not json")
    (tmp_path / "budget-4000.json").write_text(json.dumps({"budget": 4000}))
    study = optuna.create_study(
        direction="maximize", storage=open_storage(f"sqlite:///{tmp_path}/s.db")
    )
    lines = warm_start("none", study, 5000, "modern", (str(tmp_path),))
    assert len(lines) == 1 and f"{tmp_path}/budget-2000.json queued" in lines[0]
    (queued,) = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    record = records.TrialRecord.of(queued)
    assert record.origin is records.Origin.WARM_START
    assert "smaller budget" in record.provenance
    assert warm_start("none", study, 5000, "modern", (str(tmp_path),)) == []  # once a study


def test_provenance_says_how_a_shipped_net_was_fitted():
    from mnist_search.search.records import TrialRecord

    def origin(was, now):
        rec = TrialRecord(
            0, None, None, warm_start="found/x.json", warm_from_params=was, n_params=now
        )
        return rec.provenance

    assert origin(23274, 24849) == "a shipped net widened to the budget (found/x.json)"
    assert origin(24849, 24849) == "a shipped net at its own widths (found/x.json)"
    assert origin(4454, 2990) == "a shipped net narrowed to the budget (found/x.json)"
    assert origin(None, 24849) == "a shipped net widened to the budget (found/x.json)"


runner = CliRunner()


TINY = ["--train-subset", "300", "--val-size", "1000", "--device", "cpu"]


@pytest.mark.slow
def test_warm_start_queues_what_fits(tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(
        app,
        [
            "optimize",
            "--budget",
            25000,
            "--n-trials",
            1,
            "--seed",
            0,
            "--warm-start",
            "documented",
            "--data-dir",
            str(data_dir),
            *TINY,
        ],
    )
    assert r.exit_code == 0, r.output
    assert "Exp1 skipped, 480,176 parameters are over the budget of 25,000" in r.stderr
    assert "Exp2 skipped, 27,738" in r.stderr and "Exp3 queued" in r.stderr
    import optuna

    study = optuna.load_study(
        study_name="budget-25000", storage="sqlite:///studies/mnist-search.db"
    )
    first = study.trials[0]
    # In the modern space the documented nets are queued as fixed specs, trained as they are.
    assert first.user_attrs["experiment"] == 3
    assert first.user_attrs["spec"] == get_experiment(3).spec.to_dict()
    assert first.user_attrs["n_params"] == 4_418 and first.state == TrialState.COMPLETE
    waiting = study.get_trials(states=(TrialState.WAITING,))
    # Exp4, 5, 6 come next, then the start-up design's 8 nets
    assert [t.user_attrs.get("experiment") for t in waiting[:3]] == [4, 5, 6]
    assert [t.user_attrs.get("design") for t in waiting[3:]] == list(range(8))
    assert any("already in the study" in m for m in warm_start(study, 25000, "modern"))

    # In the plain space they are points of the space, queued as its parameters.
    r = runner.invoke(
        app,
        [
            "optimize",
            "--budget",
            25000,
            "--n-trials",
            1,
            "--seed",
            0,
            "--space",
            "plain",
            "--study-name",
            "plain",
            "--warm-start",
            "documented",
            "--data-dir",
            str(data_dir),
            *TINY,
        ],
    )
    assert r.exit_code == 0, r.output
    study = optuna.load_study(study_name="plain", storage="sqlite:///studies/mnist-search.db")
    assert study.trials[0].params == documented_params(get_experiment(3))


@pytest.mark.parametrize("value", ["all", "yes"])
def test_bad_warm_start(tmp_path, monkeypatch, value):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["optimize", "--warm-start", value])
    assert (
        r.exit_code == 2 and f"--warm-start '{value}'; valid: found, documented, none" in r.stderr
    )
