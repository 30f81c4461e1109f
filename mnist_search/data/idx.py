"""IDX files at the byte level: the format MNIST, Fashion-MNIST and a user's own images share.

Every reader is bounded: a file is refused past the size a valid file of its kind can have,
before it is inflated or parsed further.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from mnist_search.errors import UsageError
from mnist_search.files import InputError, read_bytes, read_gzip

# The four files of an MNIST-format dataset, by role.
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class DataError(UsageError, RuntimeError):
    """No verified dataset could be had, or a given folder holds bad files."""


def parse_idx(raw: bytes) -> np.ndarray:
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError("not an unsigned-byte IDX file")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"IDX header of {ndim} dimensions is cut off at {len(raw)} bytes")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(dims):
        raise DataError(
            f"IDX header says {dims} ({math.prod(dims):,} bytes) but holds {data.size:,} bytes"
        )
    return data.reshape(dims)


def encode_idx(array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + array.tobytes()


def md5(raw: bytes) -> str:
    return hashlib.md5(raw).hexdigest()


def verify(files: dict[str, bytes], sums: dict[str, str], where: str) -> None:
    """Raise DataError naming the first file whose uncompressed MD5 is not the published one."""
    for name, expected in sums.items():
        if name not in files:
            raise DataError(f"{where}: {name} is missing")
        got = md5(files[name])
        if got != expected:
            raise DataError(f"{where}: {name} has MD5 {got}, expected {expected}")


def read_folder(
    folder: Path, limits: dict[str, int], what: str, subfolders: tuple[str, ...] = ("raw",)
) -> dict[str, bytes]:
    """The four IDX files from a folder or one of its ``subfolders`` (torchvision keeps them in
    ``MNIST/raw``), raw or .gz, each refused past its byte limit."""
    found: dict[str, bytes] = {}
    candidates = [folder, *(folder / s for s in subfolders)]
    for name, limit in limits.items():
        for base in candidates:
            raw, gz = base / name, base / (name + ".gz")
            try:
                if raw.exists():
                    found[name] = read_bytes(raw, limit)
                    break
                if gz.exists():
                    found[name] = read_gzip(gz, limit)
                    break
            except InputError as e:
                raise DataError(f"{e} (expected {name}, at most {limit:,} bytes)") from None
        else:
            raise DataError(f"{folder}: no {name} or {name}.gz ({what})")
    return found
