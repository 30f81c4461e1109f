"""Output paths and study names that would write outside their folder, or nowhere, are refused first."""

import pytest
from typer.testing import CliRunner

from mnist_search.cli.app import app

runner = CliRunner()


def _one_line_error(r):
    """Exit 2 and one error line, the last (progress lines such as the data source may come
    before it)."""
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert [x for x in lines if x.startswith("error: ")] == lines[-1:], r.stderr
    assert "Traceback" not in r.output


@pytest.mark.parametrize(
    "args",
    [
        ["optimize", "--artifacts", "afile/x"],
        ["optimize", "--final-seeds", "1", "--best-spec", "afile/best.json"],
        ["replay", "--artifacts", "afile"],
        ["report", "--out", "afile/r.html"],
    ],
)
def test_unwritable_outputs_are_refused_before_any_work(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    r = runner.invoke(app, args)
    _one_line_error(r)
    assert "afile" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_study_names_stay_inside_the_studies_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["optimize", "--study-name", "../escape"])
    _one_line_error(r)
    assert "--study-name '../escape'" in r.stderr and list(tmp_path.iterdir()) == []
