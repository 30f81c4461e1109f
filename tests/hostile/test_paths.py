"""Output paths and study names that would write outside their folder, or nowhere, are refused first."""

import pytest
from typer.testing import CliRunner

from mnist_search.cli.app import app
from mnist_search.testing import one_line_error

runner = CliRunner()


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
    one_line_error(r)
    assert "afile" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_study_names_stay_inside_the_studies_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["optimize", "--study-name", "../escape"])
    one_line_error(r)
    assert "--study-name '../escape'" in r.stderr and list(tmp_path.iterdir()) == []
