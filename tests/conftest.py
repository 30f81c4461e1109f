"""Shared fixtures. Real MNIST comes from $MNIST_SEARCH_DATA, else a local verified copy beside the
checkout, else the product's own loader (cache, torchvision download, PyPI wheel).

Markers: a test is ``slow`` when it is marked so or uses a fixture in ``SLOW_FIXTURES`` (it starts
the tool's processes, a server, or a shared search); ``postgres`` when it needs the tests' own
server. Every test that needs Chromium, PostgreSQL or a GPU skips, naming what is missing, where
that is not installed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

from mnist_search.data.dataset import make_splits
from mnist_search.data.idx import FILES, encode_idx
from mnist_search.data.mnist import load_mnist
from mnist_search.testing import (
    PgServerMissing,
    chromium,
    hear_stops,
    throwaway_postgres,
    tool_command,
)

REPO = Path(__file__).resolve().parents[1]
LOCAL_COPY = REPO.parent / "shared" / "data" / "mnist"

# Fixtures whose tests are slow whatever they assert: each starts processes or a server.
SLOW_FIXTURES = {"spawn", "postgres_url", "study_dir"}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    if os.environ.get("MNIST_SEARCH_DATA"):
        return Path(os.environ["MNIST_SEARCH_DATA"])
    if LOCAL_COPY.is_dir():
        return LOCAL_COPY
    data = load_mnist()  # whatever source works on this machine, verified
    folder = tmp_path_factory.mktemp("mnist")
    arrays = {
        "train_images": data.train_images,
        "train_labels": data.train_labels,
        "test_images": data.test_images,
        "test_labels": data.test_labels,
    }
    for key, name in FILES.items():
        (folder / name).write_bytes(encode_idx(arrays[key].numpy()))
    return folder


@pytest.fixture(scope="session")
def mnist(data_dir):
    return load_mnist(data_dir)


def write_own(folder: Path, arrays: dict[str, object], gz: bool = False) -> Path:
    """Write arrays keyed like ``FILES`` as an own IDX folder (``.gz`` with ``gz``)."""
    import gzip

    folder.mkdir(parents=True, exist_ok=True)
    for key, name in FILES.items():
        raw = encode_idx(arrays[key].numpy() if hasattr(arrays[key], "numpy") else arrays[key])
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return folder


@pytest.fixture(scope="session")
def own_dir(mnist, tmp_path_factory) -> Path:
    """A user's own dataset: the MNIST digits 0-4 only (5 classes), 3,000 training and 600 test
    images, as the four raw IDX files. Small, so a whole run on it takes seconds."""
    keep_train = (mnist.train_labels < 5).nonzero().squeeze(1)[:3000]
    keep_test = (mnist.test_labels < 5).nonzero().squeeze(1)[:600]
    arrays = {
        "train_images": mnist.train_images[keep_train],
        "train_labels": mnist.train_labels[keep_train].to(torch.uint8),
        "test_images": mnist.test_images[keep_test],
        "test_labels": mnist.test_labels[keep_test].to(torch.uint8),
    }
    return write_own(tmp_path_factory.mktemp("own"), arrays)


@pytest.fixture(scope="session")
def small_splits(mnist):
    """2,000 training and 1,000 validation images: enough to see learning, fast on 2 cores."""
    return make_splits(mnist, "cpu", val_size=1000, train_subset=2000)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """The test's own folder as the working directory (where ``studies/`` is written)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def spawn():
    """Start ``python -m mnist_search ARGS...`` as a terminal's foreground job would (it hears
    Ctrl-C and a closed terminal), output and errors on one text pipe. A process still running
    when the test ends is killed."""
    started: list[subprocess.Popen] = []

    def start(*args, cwd=None, **kw) -> subprocess.Popen:
        kw = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True} | kw
        proc = subprocess.Popen(
            tool_command(*map(str, args)),
            cwd=cwd,
            preexec_fn=kw.pop("preexec_fn", hear_stops),
            **kw,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def browser() -> str:
    """Headless Chromium's path; the test skips where it is not installed."""
    path = chromium()
    if path is None:
        pytest.skip("chromium not installed (.ci/run installs it)")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path):
    """The same test on a SQLite file and on the tests' own PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/w.db"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server of the tests' own, on 127.0.0.1; the test skips without its binaries."""
    try:
        with throwaway_postgres() as url:
            yield url
    except PgServerMissing as e:
        pytest.skip(str(e))


def pytest_collection_modifyitems(config, items):
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "postgres_url" in item.fixturenames or params.get("storage_url") == "postgresql":
            item.add_marker(pytest.mark.postgres)
            item.add_marker(pytest.mark.slow)
        if SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
