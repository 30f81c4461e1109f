"""The frontier's record and options: what reads back, what is refused in one line, what is redone."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mnist_search.cli.app import app
from mnist_search.frontier.run import FrontierConfig, load_record
from mnist_search.search.config import FinalSettings, SearchConfig

runner = CliRunner()


def run(*args):
    return runner.invoke(app, ["frontier", *map(str, args)])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--budgets", "1000,abc"], "--budgets '1000,abc': must be positive whole numbers"),
        (["--budgets", "0"], "--budgets '0': must be positive whole numbers"),
        (["--budgets", ""], "--budgets '': must be positive whole numbers"),
        (["--budgets", "1000,1000"], "--budgets 1000,1000: a budget repeats"),
        (["--budgets", "100"], "--budgets 100 is below the smallest net"),
        (["--timeout", "-5"], "--timeout -5.0: must be a positive"),
        (["--timeout", "inf"], "--timeout inf: must be a positive"),
        (["--final-seeds", "0"], "--final-seeds 0"),
        (["--warm-start", "some"], "--warm-start 'some'; valid: found, documented, none"),
        (["--workers", "0"], "--workers 0: must be at least 1"),
        (["--search-epochs", "0"], "--search-epochs 0: must be at least 1"),
        (["--search-epochs", "10001"], "--search-epochs 10001: must be at most 10000"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--storage", "mysql://x"], "storage"),
        (["--target-accuracy", "100"], "--target-accuracy 100.0: must be a validation accuracy"),
        (["--target-accuracy", "nan"], "--target-accuracy nan: must be a validation accuracy"),
        (["--target-accuracy", "-1"], "--target-accuracy -1.0: must be a validation accuracy"),
        (["--final-augment", "heavy"], "--final-augment 'heavy'; valid: own (each finalist's"),
        (["--final-augment", "none "], "--final-augment 'none '; valid: own (each finalist's"),
        (["--space", "fancy"], "--space 'fancy'; valid: modern, tiny, plain"),
        (["--pruner", "x"], "--pruner 'x'; valid: rungs"),
        (["--parallel", "0"], "--parallel 0: must be at least 1"),
        (["--heartbeat", "0"], "--heartbeat 0: must be at least 1 second"),
        (["--startup", "-1"], "--startup -1: must be at least 0"),
    ],
)
def test_bad_frontier_options_are_one_line_and_write_nothing(tmp_path, args, message, data_dir):
    r = run("--out", tmp_path / "fr", "--data-dir", data_dir, *args)
    assert r.exit_code == 2, r.output
    assert message in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "fr").exists()


def test_a_frontier_out_that_is_a_file_is_refused(tmp_path, data_dir):
    f = tmp_path / "taken"
    f.write_text("x")
    r = run("--out", f, "--data-dir", data_dir)
    assert r.exit_code == 2 and "--out" in r.output and f.read_text() == "x"


def test_a_frontier_record_that_is_not_one_is_refused(tmp_path, data_dir):
    (tmp_path / "fr").mkdir()
    (tmp_path / "fr" / "frontier.json").write_text('{"rows": [{"budget": "x"}]}')
    r = run("--out", tmp_path / "fr", "--data-dir", data_dir, "--budgets", "300")
    assert r.exit_code == 2 and "not a frontier record" in r.output


def _good_record() -> dict:
    row = dict(
        budget=300,
        study="frontier-300",
        n_params=290,
        architecture="1→4→4 k3",
        epochs=12,
        seeds=3,
        val_mean=97.1,
        val_std=0.2,
        test_mean=97.3,
        test_std=0.1,
        origin="sampled by this search",
        trials=40,
        wall_seconds=100.0,
        spec_file="fr/budget-300.json",
        best_sampled_val=95.0,
    )
    return {"budgets": [300], "study_prefix": "frontier", "final_incumbent": True, "rows": [row]}


def test_a_good_record_reads_back(tmp_path):
    (tmp_path / "frontier.json").write_text(json.dumps(_good_record()))
    assert load_record(tmp_path)[300].n_params == 290


def test_budgets_finished_without_the_incumbent_are_not_kept_by_a_run_with_it(tmp_path):
    """frontier.md says each row retrained the incumbent: a budget finished without it (or by
    a run from before the option, whose record does not say) is retrained, and the reverse."""
    body = {**_good_record(), "final_incumbent": False}
    (tmp_path / "frontier.json").write_text(json.dumps(body))
    assert load_record(tmp_path) == {}
    assert load_record(tmp_path, final_incumbent=False)[300].n_params == 290
    del body["final_incumbent"]
    (tmp_path / "frontier.json").write_text(json.dumps(body))
    assert load_record(tmp_path) == {}
    (tmp_path / "frontier.json").write_text(json.dumps(_good_record()))
    assert load_record(tmp_path, final_incumbent=False) == {}


def test_budgets_finished_with_another_final_augmentation_are_not_kept(tmp_path):
    """A row retrained with each recipe's own augmentation is no row of a --final-augment small
    run (nor the reverse): the run with the other setting retrains that budget."""
    (tmp_path / "frontier.json").write_text(json.dumps(_good_record()))
    assert load_record(tmp_path, "small") == {}
    body = {**_good_record(), "final_augment": "small"}
    (tmp_path / "frontier.json").write_text(json.dumps(body))
    assert load_record(tmp_path) == {} and load_record(tmp_path, "small")[300].n_params == 290
    # Each budget's search gets the setting, and its final stage a study of its own.

    small = SearchConfig(final=FinalSettings(seeds=3, augment="small"))
    search = FrontierConfig(search=small, budgets=(5000,), out=tmp_path).search_for(5000, 60)
    assert search.final.augment_override == "small"


@pytest.mark.parametrize(
    "field, value",
    [
        ("budget", "300"),
        ("budget", True),
        ("n_params", 2.5),
        ("val_mean", None),
        ("study", 3),
        ("epochs", "12"),
        ("rows", None),
    ],
)
def test_a_record_with_a_wrong_field_type_is_one_line(tmp_path, field, value):
    body = _good_record()
    if field == "rows":
        body["rows"] = value
    else:
        body["rows"][0][field] = value
    (tmp_path / "frontier.json").write_text(json.dumps(body))
    from mnist_search.errors import UsageError

    with pytest.raises(UsageError, match="not a frontier record"):
        load_record(tmp_path)


def test_random_bytes_in_a_record_are_a_usage_error_or_a_record(tmp_path):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from mnist_search.errors import UsageError

    good = json.dumps(_good_record()).encode()

    @settings(max_examples=200, deadline=None)
    @given(st.integers(0, len(good) - 1), st.binary(min_size=0, max_size=4))
    def check(at, junk):
        (tmp_path / "frontier.json").write_bytes(good[:at] + junk + good[at + len(junk) :])
        try:
            rows = load_record(tmp_path)
        except UsageError as e:
            assert "\n" not in str(e)
        else:
            assert all(isinstance(r.budget, int) for r in rows.values())

    check()
