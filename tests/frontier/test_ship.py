"""`frontier --ship`: the rows' spec files, with their provenance, become the folder of known
nets, exactly; nothing is shipped from a run that did not finish every budget."""

from __future__ import annotations

import json

import pytest

from mnist_search.errors import ConfigError
from mnist_search.frontier.run import FrontierConfig, FrontierOutcome, FrontierRow
from mnist_search.frontier.ship import ship_rows
from mnist_search.search.config import SearchConfig


def _outcome(tmp_path, **kw) -> FrontierOutcome:
    rows = []
    for b in (1000, 2000):
        spec_file = tmp_path / "fr" / f"budget-{b}.json"
        spec_file.parent.mkdir(exist_ok=True)
        spec_file.write_text(json.dumps({"spec": {"convs": []}, "result": {"val_mean": 98.0}}))
        rows.append(
            FrontierRow(
                budget=b, study=f"frontier-{b}", n_params=b - 10, architecture="-", epochs=20,
                seeds=3, val_mean=98.0, val_std=0.1, test_mean=98.2, test_std=0.1,
                origin="sampled by this search", trials=5, wall_seconds=60.0,
                spec_file=str(spec_file),
            )
        )  # fmt: skip
    cfg = FrontierConfig(search=SearchConfig(storage="postgresql://u:secretpw@h/db"))
    return FrontierOutcome(cfg, rows=rows, **kw)


def test_shipping_makes_the_folder_hold_exactly_the_rows(tmp_path):
    known = tmp_path / "known"
    known.mkdir()
    (known / "budget-1000.json").write_text("{}")  # replaced
    (known / "shared-2000.json").write_text("{}")  # removed
    (known / "notes.txt").write_text("kept: not a spec file")
    done = ship_rows(_outcome(tmp_path), known, "mnist-search frontier --storage "
                     "postgresql://u:secretpw@h/db --ship known")  # fmt: skip
    assert [p.name for p in done.written] == ["budget-1000.json", "budget-2000.json"]
    assert [p.name for p in done.removed] == ["shared-2000.json"]
    assert sorted(p.name for p in known.iterdir()) == [
        "budget-1000.json",
        "budget-2000.json",
        "notes.txt",
    ]
    body = json.loads((known / "budget-2000.json").read_text())
    assert body["record"].endswith("fr/budget-2000.json") and body["result"]["val_mean"] == 98.0
    p = body["provenance"]
    assert {"command", "commit", "date", "machine", "dataset"} <= set(p)
    assert "secretpw" not in p["command"] and "***" in p["command"]


@pytest.mark.parametrize(
    "why, kw",
    [("interrupted", {"interrupted": True}), ("not every budget", {"missing": {5000: "none"}})],
)
def test_nothing_is_shipped_from_an_unfinished_run(tmp_path, why, kw):
    known = tmp_path / "known"
    known.mkdir()
    (known / "budget-1000.json").write_text("{}")
    with pytest.raises(ConfigError, match=why):
        ship_rows(_outcome(tmp_path, **kw), known, "mnist-search frontier")
    assert (known / "budget-1000.json").read_text() == "{}"
