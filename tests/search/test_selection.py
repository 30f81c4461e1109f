"""Selection never reads test. Candidates whose validation order is the reverse of their test
order go through every function that chooses a net: the finalists, the incumbent, the best net
the search sampled, the final stage's choice, and the frontier's smallest net reaching a target.
Each must pick by validation (fewer parameters breaking ties), never by the test figure that
every trial also records."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from mnist_search.frontier.target import smallest_reaching
from mnist_search.search.config import FinalSettings, SearchConfig
from mnist_search.search.final import FinalOutcome, best_sampled, summarize_final
from mnist_search.search.final_time import finalists, incumbent
from mnist_search.search.records import TrialRecord
from mnist_search.spaces import modern

SPEC = modern.build(modern.startup_design(1000, 1, seed=0)[0]).to_dict()
# (validation, test, parameters, warm start): validation rises down the list, test falls.
SEARCH = [
    (97.0, 99.5, 50, None),
    (97.5, 99.0, 60, "found/a.json"),
    (98.0, 98.5, 70, None),
    (98.5, 98.0, 80, "found/b.json"),
    (99.0, 97.5, 100, None),
]
# Retrainings, two seeds each, of trials 0, 3 and 4: the same reversal.
FINAL = {
    0: [(98.7, 99.7), (98.7, 99.5)],
    3: [(98.9, 99.1), (98.9, 98.9)],
    4: [(99.1, 98.1), (99.1, 97.9)],
}


def _trial(value: float, **attrs) -> optuna.trial.FrozenTrial:
    return create_trial(
        value=value,
        params={"x": 0.5},
        distributions={"x": FloatDistribution(0, 1)},
        user_attrs=attrs,
    )


def _studies(storage: str | None = None) -> tuple[optuna.Study, optuna.Study]:
    search = optuna.create_study(direction="maximize", storage=storage, study_name="sel")
    for val, test, n, warm in SEARCH:
        attrs = {"n_params": n, "test_accuracy": test, "spec": SPEC, "epochs": 1}
        search.add_trial(_trial(val, **attrs, **({"warm_start": warm} if warm else {})))
    final = optuna.create_study(direction="maximize", storage=storage, study_name="sel-final")
    for source, runs in FINAL.items():
        for seed, (val, test) in enumerate(runs):
            final.add_trial(
                _trial(val, source_trial=source, seed=seed, test_accuracy=test, epochs=3)
            )
    return search, final


def test_the_search_side_chooses_by_validation():
    search, _ = _studies()
    assert [r.number for r in finalists(search, 2)] == [4, 3]  # by test: 0 and 1
    assert incumbent(search).number == 3  # the better warm start by validation; by test: 1
    assert best_sampled(search).number == 4  # by test: 0


def test_the_final_stage_chooses_by_validation():
    search, final = _studies()
    sources = [TrialRecord.of(search.trials[n]) for n in FINAL]
    out = FinalOutcome(epochs=3, seeds=2, candidates=summarize_final(final, sources, 2))
    assert [c.source_trial for c in out.candidates] == [4, 3, 0]
    assert out.chosen.source_trial == 4  # the worst on test


def test_the_smallest_net_reaching_a_target_reaches_it_on_validation(tmp_path):
    url = f"sqlite:///{tmp_path}/sel.db"
    _studies(url)
    cfg = SearchConfig(budget=1000, storage=url, study_name="sel", final=FinalSettings(seeds=2))
    done = smallest_reaching(98.8, {1000: cfg}, tmp_path)
    # Trial 0 has the fewest parameters and reaches 98.8 on test, not on validation; of those
    # that reach it on validation (3 and 4), 3 has fewer.
    assert done.chosen is not None and done.chosen.source_trial == 3
