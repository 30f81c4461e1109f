"""Storage and artifact files fed bytes, someone else's database, a taken port: one line, exit 2,
nothing of theirs touched."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mnist_search.cli.app import app
from mnist_search.errors import UsageError
from mnist_search.search.storage import StorageError, check_url
from mnist_search.testing import one_line_error

runner = CliRunner()

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(st.text(max_size=80))
def test_random_storage_urls_are_a_storage_error_or_fine(tmp_path_factory, text):
    os.chdir(tmp_path_factory.mktemp("url"))
    try:
        check_url(text)
    except UsageError as e:
        assert "\n" not in str(e)


def _someone_elses_db(path: Path) -> bytes:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    con.execute("INSERT INTO customers (name) VALUES ('Ada')")
    con.commit()
    con.close()
    return path.read_bytes()


@pytest.mark.parametrize("command", ["optimize", "report", "dashboard", "export", "replay"])
def test_another_programs_sqlite_database_is_left_alone(command, tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "app.db"
    before = _someone_elses_db(db)
    args = {
        "export": ["--out", "x"],
        "optimize": ["--n-trials", "1", "--data-dir", str(data_dir)],
        "replay": ["--experiments", "3", "--data-dir", str(data_dir)],
    }.get(command, [])
    line = one_line_error(runner.invoke(app, [command, "--storage", f"sqlite:///{db}", *args]))
    assert "another program's tables (customers)" in line
    assert db.read_bytes() == before and not (tmp_path / "studies").exists()


@pytest.mark.parametrize("content", [b"just some text\n" * 50, os.urandom(4096)])
def test_a_file_that_is_no_database_is_refused_as_storage(content, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "notes.db"
    db.write_bytes(content)
    line = one_line_error(runner.invoke(app, ["report", "--storage", f"sqlite:///{db}"]))
    assert "not a SQLite database" in line and db.read_bytes() == content


def test_a_new_or_optuna_sqlite_file_is_accepted(tmp_path):
    check_url(f"sqlite:///{tmp_path}/new.db")
    import optuna

    url = f"sqlite:///{tmp_path}/optuna.db"
    optuna.create_study(storage=url)
    check_url(url)
    (tmp_path / "empty.db").write_bytes(b"")
    check_url(f"sqlite:///{tmp_path}/empty.db")
    with pytest.raises(StorageError):
        check_url(f"sqlite:///{tmp_path}")  # a folder


def test_dashboard_on_a_taken_port_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    import optuna

    optuna.create_study(storage=f"sqlite:///{tmp_path}/s.db")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(
            runner.invoke(
                app, ["dashboard", "--storage", f"sqlite:///{tmp_path}/s.db", "--port", str(port)]
            )
        )
    assert f"--port {port} on 127.0.0.1" in line and "pick another" in line


def test_dashboard_on_a_host_that_is_not_here_is_one_line(tmp_path):
    line = one_line_error(runner.invoke(app, ["dashboard", "--host", "no-such-host.invalid"]))
    assert "no-such-host.invalid" in line


@FUZZ
@given(st.one_of(st.text(max_size=80), st.sampled_from(["../../etc/passwd", "/dev/zero", "", "."])))
def test_random_artifact_ids_are_an_artifact_error(tmp_path_factory, artifact_id):
    from types import SimpleNamespace

    from mnist_search.search.artifacts import ArtifactError, artifact_store, load_weights

    store = artifact_store(tmp_path_factory.mktemp("artifacts"))
    with pytest.raises(ArtifactError) as e:
        load_weights(SimpleNamespace(number=3, weights_artifact_id=artifact_id), store)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("content", [b"", b"not a pickle", os.urandom(3000), b"PK\x03\x04" * 50])
def test_a_damaged_weights_file_is_an_artifact_error(content, tmp_path):
    import optuna
    from optuna.artifacts import upload_artifact

    from mnist_search.search.artifacts import ArtifactError, artifact_store, load_weights

    store = artifact_store(tmp_path / "artifacts")
    study = optuna.create_study()
    trial = study.ask()
    (tmp_path / "w.pt").write_bytes(content)
    artifact_id = upload_artifact(
        artifact_store=store, file_path=str(tmp_path / "w.pt"), study_or_trial=trial
    )
    from types import SimpleNamespace

    with pytest.raises(ArtifactError, match="unreadable|not a state_dict"):
        load_weights(SimpleNamespace(number=0, weights_artifact_id=artifact_id), store)


def test_the_tools_own_database_after_a_crash_mid_write_is_accepted(tmp_path):
    """A process killed inside a write leaves a hot journal; the ownership check must roll it
    back like any SQLite client, not refuse the file (a read-only look cannot)."""
    import optuna

    db = tmp_path / "s.db"
    optuna.create_study(study_name="s", storage=f"sqlite:///{db}")
    crash = (
        "import os, sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('PRAGMA cache_size = 2')  # pages spill to the file: the journal is hot\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "c.execute(\"UPDATE studies SET study_name = 'half-written'\")\n"
        "for i in range(300):\n"
        "    c.execute('INSERT INTO study_user_attributes (study_id, key, value_json) '\n"
        "              'VALUES (1, ?, hex(randomblob(4000)))', (str(i),))\n"
        "os._exit(0)  # killed mid-transaction: no commit, no rollback\n"
    )
    subprocess.run([sys.executable, "-c", crash, str(db)], check=True)
    assert (tmp_path / "s.db-journal").exists()  # the hot journal a kill leaves
    check_url(f"sqlite:///{db}")
    assert optuna.load_study(study_name="s", storage=f"sqlite:///{db}").study_name == "s"
