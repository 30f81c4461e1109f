"""A storage password is never shown: not in messages, files, the process list or a worker's
command line."""

import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mnist_search.cli.app import app
from mnist_search.search.storage import masked
from mnist_search.testing import one_line_error

runner = CliRunner()

TINY = ["--train-subset", "300", "--val-size", "300", "--device", "cpu"]


def test_own_process_line_is_masked(monkeypatch):
    from mnist_search import redact

    line = ["python", "-m", "mnist_search", "optimize", "--storage=postgresql://u:pw@h/db"]
    titles = []
    monkeypatch.setattr(redact, "own_command_line", lambda: line)
    monkeypatch.setattr("setproctitle.setproctitle", titles.append)
    assert redact.hide_from_process_list()
    assert titles == ["python -m mnist_search optimize --storage=postgresql://u:***@h/db"]
    line = ["python", "-m", "mnist_search", "optimize", "--storage", "sqlite:///a.db"]
    assert not redact.hide_from_process_list() and len(titles) == 1


@pytest.mark.parametrize(
    "url,secret",
    [
        ("postgresql://u:secretpw@h:5432/db", "secretpw"),
        ("postgresql+psycopg://u:se/cr:et@h/db", "se/cr:et"),
        ("postgresql://u:se cret@h/db", "se cret"),
        ("postgresql://u@h/db?sslmode=require&password=s3cr%20t", "s3cr%20t"),
        ("postgresql://u@h/db?PASSWORD=topsecret#x", "topsecret"),
    ],
)
def test_every_form_of_url_password_is_masked(url, secret):
    for shown in (masked(url, url), masked(f"--storage={url}", url), masked(f"error: {url}", url)):
        assert secret not in shown and "***" in shown, shown
    # a message quotes the URL: the mask keeps the quotes, whichever pass makes it
    quoted = masked(f"storage {masked(url)!r} is unusable", url)
    assert secret not in quoted and quoted.endswith("' is unusable"), quoted
    # in free text without the URL to go by, the usual forms still are
    if " " not in secret:
        assert secret not in masked(f"could not open {url} now")


def test_masked():
    assert masked("postgresql://u:secretpw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert (
        masked("auth failed for secretpw", "postgresql://u:secretpw@h/db") == "auth failed for ***"
    )
    assert masked("sqlite:///studies/a.db") == "sqlite:///studies/a.db"
    # A short password is masked where it stands alone, not inside the words of a message.
    url = "postgresql://u:p@127.0.0.1:1/x"
    said = masked(f"storage {url!r}: (psycopg.OperationalError) p failed", url)
    assert (
        said == "storage 'postgresql://u:***@127.0.0.1:1/x': (psycopg.OperationalError) *** failed"
    )


def test_unreachable_server_error_hides_the_password(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(
        app, ["optimize", "--storage", "postgresql://u:secretpw@127.0.0.1:1/db", "--n-trials", "1"]
    )
    one_line_error(r)
    assert "secretpw" not in r.output and "u:***@127.0.0.1" in r.stderr


def test_password_is_never_shown_stored_or_on_a_command_line(
    spawn, tmp_path, postgres_url, data_dir
):
    """Every process the run starts (the workers, a fork on the way to each) is logged by an
    audit hook as it starts, with the line it shows: none shows the password. The tool's own
    line is masked a tenth of a second after it starts, before anything is forked."""
    import ast

    from mnist_search.testing import log_spawns

    url = postgres_url.replace("postgres@", "postgres:secretpw@")  # trust auth ignores it
    log = tmp_path / "spawned.log"
    proc = spawn(
        "optimize",
        "--budget",
        3000,
        "--n-trials",
        1,
        "--workers",
        2,
        "--final-seeds",
        1,
        "--study-name",
        "pw",
        "--storage",
        url,
        "--data-dir",
        data_dir,
        *TINY,
        cwd=tmp_path,
        env=os.environ | log_spawns(tmp_path / "hook", log),
    )
    own = []
    while proc.poll() is None:
        try:
            line = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        except OSError:
            break
        if line:  # a process that has just ended shows an empty line
            own.append(line)
        time.sleep(0.2)
    out = proc.stdout.read()
    assert proc.returncode == 0, out
    spawned = [ast.literal_eval(x) for x in log.read_text().splitlines()]
    workers = [s for s in spawned if "mnist_search.search.worker" in " ".join(s[3])]
    assert len(workers) == 2, spawned  # the log saw what it must see
    leaks = [s for s in spawned if "secretpw" in repr(s)]
    assert leaks == [], "a process started with the password on a command line"
    assert own and b"secretpw" not in own[-1] and b"postgres:***@" in own[-1], own[-1:]
    assert "secretpw" not in out and "postgres:***@" in out
    best = (tmp_path / "studies" / "pw-best.json").read_text()
    assert "secretpw" not in best and "***" in best
