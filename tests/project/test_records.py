"""The results pages agree with the runs they cite: every row of a table in
`benchmarks/accuracy.md` is a row of the run file it is copied from, every exact mean in its goals
table is the mean in that run's spec file, and every run folder says how it was made."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
RUNS = BENCH / "runs"
PAGE = BENCH / "accuracy.md"


def _cells(line: str) -> list[str]:
    """A markdown table row's cells, with bold marks and escaped bars undone."""
    line = line.replace("\\|", "¦")
    return [
        c.strip().replace("*", "").replace("¦", "|") for c in line.strip().strip("|").split("|")
    ]


def _tables(text: str) -> list[tuple[str | None, list[str], list[list[str]]]]:
    """(the run file cited in the paragraph before it, header, rows) for every table."""
    out, cited, lines = [], None, text.splitlines()
    i = 0
    while i < len(lines):
        if m := re.search(r"From `(runs/[^`]+)`", lines[i]):
            cited = m.group(1)
        if lines[i].startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header, rows = _cells(lines[i]), []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            out.append((cited, header, rows))
            cited = None
            continue
        if lines[i].startswith("#"):
            cited = None
        i += 1
    return out


def _run_rows(path: Path) -> list[dict[str, str]]:
    rows = []
    for _, header, body in _tables(path.read_text()):
        rows += [dict(zip(header, r)) for r in body]
    return rows


FIGURES = ("budget", "params", "epochs (cap)", "val mean ± std", "test mean ± std")
COPIED = [t for t in _tables(PAGE.read_text()) if t[0]]


def test_the_page_copies_tables_from_runs():
    assert len(COPIED) >= 1


@pytest.mark.parametrize("cited,header,rows", COPIED, ids=[t[0] for t in COPIED])
def test_each_copied_row_is_a_row_of_the_run_it_cites(cited, header, rows):
    source = BENCH / cited
    assert source.is_file(), cited
    theirs = [tuple(r.get(k) for k in FIGURES) for r in _run_rows(source)]
    for row in rows:
        ours = tuple(dict(zip(header, row)).get(k) for k in FIGURES)
        assert ours in theirs, f"{ours} is not a row of {cited}"


def _goal_rows() -> list[dict[str, str]]:
    goals = [t for t in _tables(PAGE.read_text()) if "exact test mean (std)" in t[1]]
    assert len(goals) == 1
    _, header, rows = goals[0]
    return [dict(zip(header, r)) for r in rows]


@pytest.mark.parametrize("row", _goal_rows(), ids=lambda r: r["budget"])
def test_each_goal_row_is_the_chosen_net_of_the_run_it_names(row):
    folder = RUNS / row["the run"].strip("`")
    assert (folder / "README.md").is_file(), folder
    n_params = int(re.match(r"([\d,]+) p\.", row["best row by the rule"]).group(1).replace(",", ""))
    mean, std = re.match(r"([\d.]+) \(([\d.]+)\)", row["exact test mean (std)"]).groups()
    specs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    specs = [s for s in specs if s.get("n_params") == n_params and "result" in s]
    if specs:  # the run kept its spec file: the exact mean, to the digits shown
        exact = [s["result"]["test_mean"] for s in specs]
        assert any(f"{m:.{len(mean.split('.')[1])}f}" == mean for m in exact), (mean, exact)
        goal = float(re.search(r"([\d.]+)", row["goal"]).group(1))
        above = [m for m in exact if f"{m:.{len(mean.split('.')[1])}f}" == mean][0] - goal
        said = row["against the goal"]
        # the verdict follows the exact figure: above only by more than the spread
        if above < 0:
            assert "missed" in said, said
        elif above < float(std):
            assert "level" in said, said
    else:  # only its table: the rounded figures of its row
        rows = _run_rows(folder / "frontier.md")
        assert any(
            r["params"].replace(",", "") == str(n_params)
            and r["test mean ± std"] == f"{mean} ± {std}"
            for r in rows
        ), (n_params, mean, std)


@pytest.mark.parametrize("folder", sorted(RUNS.iterdir()), ids=lambda p: p.name)
def test_every_run_folder_is_dated_and_says_how_it_was_made(folder):
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}-[a-z0-9-]+", folder.name), folder.name
    readme = (folder / "README.md").read_text()
    for what in ("Command", "Commit", "Machine", "Result"):
        assert f"**{what}**" in readme, f"{folder.name}/README.md says no {what}"


def test_the_shipped_nets_are_exactly_the_rows_of_the_goals_table():
    """What a user retrains, what the warm start queues and what the page says are one set of
    nets: every net of the goals table is a file of `mnist_search/catalog/found/` with the same
    exact test mean (and length, for the one-epoch row), and no shipped file is anything else."""
    from importlib.resources import files

    found = files("mnist_search.catalog").joinpath("found")
    shipped = [json.loads(p.read_text()) for p in found.iterdir() if p.name.endswith(".json")]
    rows = [r for r in _goal_rows() if re.match(r"[\d,]+ p\.", r["best row by the rule"])]
    assert len(shipped) == len(rows)
    for row in rows:
        n_params = int(
            re.match(r"([\d,]+) p\.", row["best row by the rule"]).group(1).replace(",", "")
        )
        mean = re.match(r"([\d.]+) \(", row["exact test mean (std)"]).group(1)
        one_epoch = "one epoch" in row["budget"]
        assert any(
            s["n_params"] == n_params
            and f"{s['result']['test_mean']:.{len(mean.split('.')[1])}f}" == mean
            and (s["epochs"] == 1) == one_epoch
            for s in shipped
        ), f"no shipped net is the {row['budget']} row ({n_params:,} p., test {mean})"


def test_the_page_is_what_its_generating_command_writes():
    """No hand edits: the command the page names writes the page, byte for byte."""
    import shlex
    import subprocess
    import sys

    text = PAGE.read_text()
    m = re.search(r"Generated by `python benchmarks/accuracy_page\.py ([^`]+)`", text)
    assert m, "the page does not name the command that made it"
    made = subprocess.run(
        [sys.executable, str(BENCH / "accuracy_page.py"), *shlex.split(m.group(1))],
        capture_output=True,
        text=True,
        check=True,
        cwd=BENCH,
    )
    assert made.stdout == text
