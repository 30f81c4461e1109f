"""The commands' options agree with the library: `frontier` takes every search option `optimize`
takes, and each option's default is its dataclass field's default (one place for each)."""

from __future__ import annotations

import dataclasses

import typer.main

from mnist_search.cli.app import app
from mnist_search.frontier.run import FrontierConfig
from mnist_search.search.config import FinalSettings, SearchConfig
from mnist_search.training.protocol import Protocol
from mnist_search.training.settings import RunSettings

# optimize's options that a frontier sets per budget, or names otherwise.
PER_BUDGET = {"budget", "n_trials", "study_name", "best_spec", "top", "final_epochs", "epochs"}


def _params(name: str) -> dict[str, object]:
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    return {p.name: p.default for p in command.params}


def test_frontier_takes_every_search_option_of_optimize():
    optimize, frontier = _params("optimize"), _params("frontier")
    assert set(optimize) - PER_BUDGET - set(frontier) == set()
    assert "search_epochs" in frontier  # optimize's --epochs, for each budget's search trials


def _fields(*parts) -> dict[str, object]:
    out: dict[str, object] = {}
    for prefix, obj in parts:
        for f in dataclasses.fields(obj):
            out[prefix + f.name] = getattr(obj, f.name)
    return out


def test_each_option_default_is_its_dataclass_default():
    search = SearchConfig()
    defaults = _fields(
        ("", search),
        ("", search.protocol),
        ("", search.run),
        ("final_", search.final),
    )
    defaults["compile_model"] = RunSettings().compile
    optimize = _params("optimize")
    checked = 0
    for name, default in optimize.items():
        if name in defaults and name not in ("final_epochs", "protocol", "run", "final"):
            assert default == defaults[name] or (default, defaults[name]) == (None, None), name
            checked += 1
    assert checked >= 15
    # The frontier's own defaults: its search's, and its own fields.
    frontier, fc = _params("frontier"), FrontierConfig()
    own = _fields(
        ("", fc.search), ("", fc.search.protocol), ("", fc.search.run), ("final_", fc.final)
    )
    own |= {
        "timeout": fc.timeout,
        "study_prefix": fc.study_prefix,
        "search_epochs": Protocol().epochs,
    }
    for name in ("final_seeds", "final_top", "final_incumbent", "timeout", "study_prefix", "space"):
        assert frontier[name] == own[name], name
    assert FinalSettings().seeds == optimize["final_seeds"]
    assert frontier["budgets"] == ",".join(map(str, fc.budgets))
