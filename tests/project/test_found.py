"""The shipped nets in `mnist_search/catalog/found/` are data, and each is what its record says: it loads
as `train --spec` reads it, counts and describes what it records, trains with its recorded
settings, and its figures are those of the run file it cites under `benchmarks/runs/`."""

from __future__ import annotations

import json
import statistics
from importlib.resources import files
from pathlib import Path

import pytest

from mnist_search.net.spec import count_params, describe
from mnist_search.training.loop import TrainConfig
from mnist_search.training.retrain import SpecFile

REPO = Path(__file__).resolve().parents[2]
FOUND = sorted(
    (Path(str(p)) for p in files("mnist_search.catalog").joinpath("found").iterdir()),
    key=lambda p: p.name,
)
FOUND = [p for p in FOUND if p.suffix == ".json"]


def test_there_are_shipped_nets():
    assert len(FOUND) >= 5  # the warm start's nets: at least one for each default budget


@pytest.mark.parametrize("path", FOUND, ids=lambda p: p.name)
def test_a_shipped_net_is_what_its_file_records(path):
    body = json.loads(path.read_text())
    net = SpecFile.read(path)  # as `train --spec` reads it
    assert count_params(net.spec) == body["n_params"] <= body["budget"]
    assert describe(net.spec) == body["architecture"]
    cfg = TrainConfig(**{**net.training, "epochs": net.epochs, "seed": net.seed or 0})
    trained_with = cfg.to_dict()
    assert {k: trained_with[k] for k in body["training"]} == body["training"]
    assert cfg.epochs == body["epochs"]
    result = body["result"]
    assert result["seeds"] == [0, 1, 2]
    for split in ("val", "test"):  # the means and spreads are those of the seeds' figures
        runs = result[f"{split}_accuracy"]
        assert len(runs) == 3
        assert result[f"{split}_mean"] == pytest.approx(statistics.mean(runs))
        assert result[f"{split}_std"] == pytest.approx(statistics.stdev(runs))


def _record_holds(body: dict, record: Path) -> bool:
    """The run file holds this net's figures: the same spec and per-seed accuracies (a spec or
    `train --json` file), or a results line with its parameters and both means ± std (a log)."""
    r = body["result"]
    if record.suffix == ".json":
        d = json.loads(record.read_text())
        if "result" in d:  # a spec file the run wrote
            return (
                d["spec"],
                d["epochs"],
                d["result"]["val_accuracy"],
                d["result"]["test_accuracy"],
            ) == (
                body["spec"],
                body["epochs"],
                r["val_accuracy"],
                r["test_accuracy"],
            )
        runs = d["runs"]  # what `train --spec ... --json` printed
        return (d["n_params"], d["epochs"]) == (body["n_params"], body["epochs"]) and (
            [x["val_accuracy"] for x in runs],
            [x["test_accuracy"] for x in runs],
        ) == (r["val_accuracy"], r["test_accuracy"])
    val = f"{r['val_mean']:.2f} ± {r['val_std']:.2f}"
    test = f"{r['test_mean']:.2f} ± {r['test_std']:.2f}"
    n = body["n_params"]
    return any(
        val in line and test in line and (f" {n} " in line or f"{n:,}" in line)
        for line in record.read_text().splitlines()
    )


@pytest.mark.parametrize("path", FOUND, ids=lambda p: p.name)
def test_a_shipped_nets_figures_are_those_of_the_run_it_cites(path):
    body = json.loads(path.read_text())
    record = REPO / body["record"]
    assert body["record"].startswith("benchmarks/runs/") and record.is_file(), body["record"]
    assert _record_holds(body, record), f"{path.name}: its figures are not in {body['record']}"
