"""Every file the tool reads, fed bytes: damaged, endless, huge, binary, nested, someone else's.
Each must end as one line naming the file and exit status 2, within bounded memory."""

from __future__ import annotations

import gzip
import json
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
from mnist_search.data.mnist import MD5, SIZES, DataError, read_folder
from mnist_search.errors import UsageError
from mnist_search.files import InputError, read_gzip
from mnist_search.search.storage import StorageError, check_url
from mnist_search.training.retrain import SpecFile

runner = CliRunner()
IMAGES = "train-images-idx3-ubyte"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def one_line(r) -> str:
    """Exit 2, one line on stderr that starts with 'error: ', no traceback; the line."""
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    assert "Traceback" not in r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) >= 1 and lines[-1].startswith("error: "), r.stderr
    assert not any(x.startswith("error: ") for x in lines[:-1]), r.stderr
    return lines[-1]


def folder_with(tmp_path: Path, data_dir: Path, name: str, content: bytes, gz: bool) -> Path:
    """A copy of the real folder (links) with one file replaced by ``content``."""
    d = tmp_path / "data"
    d.mkdir()
    for other in MD5:
        if other != name:
            # under the real file's own name: a raw IDX file linked as .gz reads as damaged gzip
            src = data_dir / f"{other}.gz"
            src = src if src.exists() else data_dir / other
            (d / src.name).symlink_to(src)
    (d / (name + (".gz" if gz else ""))).write_bytes(content)
    return d


# --- data files -----------------------------------------------------------------------------------


def _damaged_in_the_middle(data_dir: Path) -> bytes:
    real = gzip.compress(b"\x00" * 100_000 + os.urandom(200_000))
    middle = len(real) // 2
    return real[:middle] + bytes(b ^ 0xFF for b in real[middle : middle + 64]) + real[middle + 64 :]


BAD_GZ = {
    "damaged deflate stream": _damaged_in_the_middle,
    "cut off": lambda d: gzip.compress(os.urandom(5000))[:-100],
    "not gzip": lambda d: b"PK\x03\x04 this is a zip header",
    "empty": lambda d: b"",
    "header only": lambda d: gzip.compress(b"")[:10],
    "trailing garbage": lambda d: gzip.compress(b"x" * 1000) + b"\x00garbage",
}


@pytest.mark.parametrize("kind", sorted(BAD_GZ))
def test_a_bad_gzip_file_is_one_line_naming_it(kind, tmp_path, data_dir):
    d = folder_with(tmp_path, data_dir, IMAGES, BAD_GZ[kind](data_dir), gz=True)
    with pytest.raises(DataError, match=IMAGES):
        read_folder(d)
    line = one_line(runner.invoke(app, ["train", "--experiment", "3", "--data-dir", str(d)]))
    assert IMAGES in line


BAD_RAW = {
    "too large": b"\x00\x00\x08\x03" + b"\x00" * (SIZES[IMAGES] + 10),
    "not IDX": b"hello world\n" * 100,
    "empty": b"",
}


@pytest.mark.parametrize("kind", sorted(BAD_RAW))
def test_a_bad_raw_file_is_one_line_naming_it(kind, tmp_path, data_dir):
    d = folder_with(tmp_path, data_dir, IMAGES, BAD_RAW[kind], gz=False)
    line = one_line(runner.invoke(app, ["train", "--experiment", "3", "--data-dir", str(d)]))
    assert IMAGES in line


@pytest.mark.parametrize("what", ["folder", "device"])
def test_a_data_file_that_is_not_a_regular_file(what, tmp_path, data_dir):
    d = folder_with(tmp_path, data_dir, "t10k-labels-idx1-ubyte", b"", gz=False)
    target = d / "t10k-labels-idx1-ubyte"
    target.unlink()
    if what == "folder":
        target.mkdir()
    else:
        target.symlink_to("/dev/zero")  # endless: must not be read at all
    line = one_line(runner.invoke(app, ["train", "--experiment", "3", "--data-dir", str(d)]))
    assert "t10k-labels-idx1-ubyte" in line


@pytest.fixture(scope="module")
def gzip_bomb(tmp_path_factory) -> Path:
    """1 GB of zeros in about 1 MB of gzip, under the name of the largest IDX file."""
    path = tmp_path_factory.mktemp("bomb") / f"{IMAGES}.gz"
    zeros = b"\x00" * (1 << 24)
    with gzip.open(path, "wb", compresslevel=1) as f:
        for _ in range(64):
            f.write(zeros)
    return path


# The peak memory of this process alone: VmHWM starts afresh at exec, where getrusage's maxrss
# would still count the forked parent's pages.
HWM = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])"
# Runs the command line in a child that reports its own peak memory (kB) when it exits.
PEAK = (
    "import runpy, sys\n"
    "sys.argv = ['mnist-search', *sys.argv[1:]]\n"
    "try:\n"
    "    runpy.run_module('mnist_search', run_name='__main__')\n"
    "finally:\n"
    f"    print('peak_kb', {HWM}, file=sys.stderr)\n"
)


def _run_with_peak(*args) -> tuple[subprocess.CompletedProcess, float]:
    done = subprocess.run(
        [sys.executable, "-c", PEAK, *map(str, args)], capture_output=True, text=True, timeout=120
    )
    lines = done.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("peak_kb "), done.stderr
    done.stderr = "\n".join(lines[:-1])
    return done, int(lines[-1].split()[1]) / 1024


def test_a_gzip_bomb_is_refused_after_the_cap_in_bounded_memory(gzip_bomb, tmp_path, data_dir):
    # The reader alone, in a process with nothing else loaded: the cap, not the bomb, sets it.
    reader = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from mnist_search.files import InputError, read_gzip\n"
            "try:\n    read_gzip(sys.argv[1], 47_040_016)\nexcept InputError as e:\n    print(e)\n"
            f"print({HWM})",
            str(gzip_bomb),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    said, peak_kb = reader.stdout.strip().splitlines()
    assert "more than 47,040,016 bytes once inflated" in said
    assert int(peak_kb) / 1024 < 250, f"the reader peaked at {int(peak_kb) / 1024:.0f} MB"
    # The command: one line, exit 2, and little above what the same command takes to refuse a
    # bad flag (torch's libraries alone are several hundred MB of the process).
    d = tmp_path / "data"
    d.mkdir()
    for other in MD5:
        if other != IMAGES:
            (d / f"{other}.gz").symlink_to(data_dir / f"{other}.gz")
    (d / gzip_bomb.name).symlink_to(gzip_bomb)
    done, peak = _run_with_peak("train", "--experiment", "3", "--data-dir", d)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[-1].startswith("error: ") and IMAGES in done.stderr
    _, base = _run_with_peak("train", "--spec", "/dev/zero")
    assert peak - base < 250, f"refusing the bomb took {peak - base:.0f} MB more than no data"


@FUZZ
@given(st.binary(max_size=600), st.booleans())
def test_random_bytes_as_an_idx_file_are_a_data_error(tmp_path_factory, blob, gz):
    d = tmp_path_factory.mktemp("fuzz")
    name = "t10k-labels-idx1-ubyte"
    (d / (name + (".gz" if gz else ""))).write_bytes(
        gzip.compress(blob) if gz and blob[:1] == b"\x01" else blob
    )
    for other in MD5:
        if other != name:
            (d / other).write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x00")
    with pytest.raises(DataError):
        read_folder(d) and _verify(d)


def _verify(d):
    from mnist_search.data.mnist import verify

    verify(read_folder(d), str(d))


@FUZZ
@given(st.binary(min_size=1, max_size=64), st.integers(0, 10**6))
def test_mutated_gzip_streams_are_a_data_error(tmp_path_factory, patch, where):
    """A real gzip stream with bytes overwritten anywhere: refused, never a traceback."""
    real = gzip.compress(os.urandom(2000) + b"\x00" * 2000)
    at = where % len(real)
    mutated = real[:at] + patch + real[at + len(patch) :]
    path = tmp_path_factory.mktemp("gz") / "x.gz"
    path.write_bytes(mutated)
    try:
        data = read_gzip(path, 10_000)
    except InputError as e:
        assert str(path) in str(e) and "\n" not in str(e)
    else:
        assert len(data) <= 10_000


# --- spec files -----------------------------------------------------------------------------------

VALID = {
    "spec": {"convs": [{"out_channels": 4, "kernel": 3, "pool": True}], "head": "gap"},
    "training": {"optimizer": "adamw", "lr": 0.003, "batch_size": 32},
    "epochs": 1,
}
# What the final stage writes (--best-spec): the same reader takes it.
BEST_SPEC = {
    **VALID,
    "seed": 0,
    "protocol": {"train_subset": None, "val_size": 5000, "split_seed": 0},
    "n_params": 90,
    "source_trial": 3,
    "result": {"seeds": [0], "val_accuracy": [98.0], "test_mean": 98.1},
    "budget": 25000,
    "storage": "sqlite:///studies/mnist-search.db",
}
BAD_SPECS = {
    "binary": bytes(range(256)) * 4,
    "latin-1 text": '{"spec": "caf\xe9"}'.encode("latin-1"),
    "deep array": b"[" * 100_000 + b"]" * 100_000,
    "deep object": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "huge": b'{"spec": "' + b"x" * (2 << 20) + b'"}',
    "empty": b"",
    "giant integer": b'{"spec": {"convs": [], "head": "gap"}, "epochs": ' + b"9" * 5000 + b"}",
    "utf-16": json.dumps(VALID).encode("utf-16"),
    "cut off": json.dumps(VALID).encode()[:-7],
    "not an object": b"[1, 2, 3]",
}


@pytest.mark.parametrize("kind", sorted(BAD_SPECS))
def test_a_bad_spec_file_is_one_line(kind, tmp_path):
    path = tmp_path / "net.json"
    path.write_bytes(BAD_SPECS[kind])
    line = one_line(runner.invoke(app, ["train", "--spec", str(path)]))
    assert line.startswith("error: --spec ") and str(path) in line


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom", "folder", "missing"])
def test_a_spec_that_is_no_regular_file_is_one_line(target, tmp_path):
    path = tmp_path / "net.json"
    if target == "folder":
        path.mkdir()
    elif target.startswith("/dev/"):
        path.symlink_to(target)
    line = one_line(runner.invoke(app, ["train", "--spec", str(path)]))
    assert str(path) in line


def test_a_fifo_spec_is_refused_without_blocking(tmp_path):
    path = tmp_path / "net.json"
    os.mkfifo(path)
    writer = subprocess.Popen(["sh", "-c", f"exec 3>{path}; sleep 30"])  # opened, never written
    try:
        one_line(runner.invoke(app, ["train", "--spec", str(path)]))
    finally:
        writer.kill()


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=300),
        st.tuples(st.integers(0, 10**6), st.binary(min_size=1, max_size=8)).map(
            lambda p: _mutate(json.dumps(VALID).encode(), *p)
        ),
        st.tuples(st.integers(0, 10**6), st.binary(min_size=1, max_size=8)).map(
            lambda p: _mutate(json.dumps(BEST_SPEC).encode(), *p)
        ),
    )
)
def test_spec_bytes_read_or_are_a_usage_error(tmp_path_factory, blob):
    """The spec reader on random and mutated bytes: a SpecFile or one line, nothing else."""
    path = tmp_path_factory.mktemp("spec") / "net.json"
    path.write_bytes(blob)
    try:
        SpecFile.read(path)
    except UsageError as e:
        assert "\n" not in str(e)


def _mutate(raw: bytes, at: int, patch: bytes) -> bytes:
    at %= len(raw)
    return raw[:at] + patch + raw[at + len(patch) :]


# --- storage URLs and files -----------------------------------------------------------------------


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
    line = one_line(runner.invoke(app, [command, "--storage", f"sqlite:///{db}", *args]))
    assert "another program's tables (customers)" in line
    assert db.read_bytes() == before and not (tmp_path / "studies").exists()


@pytest.mark.parametrize("content", [b"just some text\n" * 50, os.urandom(4096)])
def test_a_file_that_is_no_database_is_refused_as_storage(content, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "notes.db"
    db.write_bytes(content)
    line = one_line(runner.invoke(app, ["report", "--storage", f"sqlite:///{db}"]))
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


# --- ports ------------------------------------------------------------------------------------------


def test_dashboard_on_a_taken_port_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    import optuna

    optuna.create_study(storage=f"sqlite:///{tmp_path}/s.db")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line(
            runner.invoke(
                app, ["dashboard", "--storage", f"sqlite:///{tmp_path}/s.db", "--port", str(port)]
            )
        )
    assert f"--port {port} on 127.0.0.1" in line and "pick another" in line


def test_dashboard_on_a_host_that_is_not_here_is_one_line(tmp_path):
    line = one_line(runner.invoke(app, ["dashboard", "--host", "no-such-host.invalid"]))
    assert "no-such-host.invalid" in line


# --- artifact ids and weight files ----------------------------------------------------------------


@FUZZ
@given(st.one_of(st.text(max_size=80), st.sampled_from(["../../etc/passwd", "/dev/zero", "", "."])))
def test_random_artifact_ids_are_an_artifact_error(tmp_path_factory, artifact_id):
    from types import SimpleNamespace

    from mnist_search.outputs.artifacts import ArtifactError, artifact_store, load_weights

    store = artifact_store(tmp_path_factory.mktemp("artifacts"))
    with pytest.raises(ArtifactError) as e:
        load_weights(SimpleNamespace(number=3, weights_artifact_id=artifact_id), store)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("content", [b"", b"not a pickle", os.urandom(3000), b"PK\x03\x04" * 50])
def test_a_damaged_weights_file_is_an_artifact_error(content, tmp_path):
    import optuna
    from optuna.artifacts import upload_artifact

    from mnist_search.outputs.artifacts import ArtifactError, artifact_store, load_weights

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
