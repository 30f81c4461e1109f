"""Every file the tool reads, fed bytes: damaged, endless, huge, binary, nested, someone else's.
Each must end as one line naming the file and exit status 2, within bounded memory."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mnist_search.cli.app import app
from mnist_search.data.idx import DataError
from mnist_search.data.known import SIZES
from mnist_search.data.mnist import MD5, read_folder
from mnist_search.files import InputError, read_gzip
from mnist_search.testing import one_line_error

runner = CliRunner()

IMAGES = "train-images-idx3-ubyte"

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


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
    line = one_line_error(runner.invoke(app, ["train", "--experiment", "3", "--data-dir", str(d)]))
    assert IMAGES in line


BAD_RAW = {
    "too large": b"\x00\x00\x08\x03" + b"\x00" * (SIZES[IMAGES] + 10),
    "not IDX": b"hello world\n" * 100,
    "empty": b"",
}


@pytest.mark.parametrize("kind", sorted(BAD_RAW))
def test_a_bad_raw_file_is_one_line_naming_it(kind, tmp_path, data_dir):
    d = folder_with(tmp_path, data_dir, IMAGES, BAD_RAW[kind], gz=False)
    line = one_line_error(runner.invoke(app, ["train", "--experiment", "3", "--data-dir", str(d)]))
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
    line = one_line_error(runner.invoke(app, ["train", "--experiment", "3", "--data-dir", str(d)]))
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


@pytest.mark.slow
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


@FUZZ
@given(
    st.sampled_from(sorted(MD5)),
    st.integers(0, 40),
    st.binary(min_size=1, max_size=12),
    st.booleans(),
)
def test_an_own_folder_with_bytes_overwritten_loads_or_is_one_line(
    tmp_path_factory, own_dir, name, at, patch, cut
):
    """Any file of an own folder, its header or first bytes overwritten (or the file cut there):
    it loads as a valid dataset or is refused with one line naming that file."""
    from mnist_search.data.own import load_own

    d = tmp_path_factory.mktemp("own")
    for other in MD5:
        raw = (own_dir / other).read_bytes()
        if other == name:
            raw = raw[:at] if cut else raw[:at] + patch + raw[at + len(patch) :]
        (d / other).write_bytes(raw)
    try:
        data = load_own(d)
    except DataError as e:
        assert name in str(e) and "\n" not in str(e), str(e)
    else:
        assert data.classes >= 2 and data.train_images.shape[1:] == (28, 28)
        assert int(data.test_labels.max()) < data.classes
