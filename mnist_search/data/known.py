"""A published dataset with checksums (MNIST, Fashion-MNIST): read from the first source that
has it, every source checked against the MD5 sums of the original uncompressed IDX files.

Sources, in order: a folder the user names (its failure is the user's error, never skipped);
the cache this tool filled earlier; a copy a system package installed; the downloads.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from mnist_search.data.dataset import Dataset, pixel_stats
from mnist_search.data.idx import FILES, DataError, parse_idx, read_folder, verify
from mnist_search.files import write_atomic

log = logging.getLogger(__name__)

# The uncompressed sizes of the original files (MNIST's and Fashion-MNIST's are the same): no
# reader takes in more than these.
SIZES = {
    "train-images-idx3-ubyte": 47_040_016,
    "train-labels-idx1-ubyte": 60_008,
    "t10k-images-idx3-ubyte": 7_840_016,
    "t10k-labels-idx1-ubyte": 10_008,
}
Fetch = Callable[[Path], dict[str, bytes]]


def torchvision_fetch(cls_name: str) -> Fetch:
    """A download through torchvision's ``datasets.<cls_name>`` into a folder, read back."""

    def fetch(dest: Path) -> dict[str, bytes]:
        import torchvision.datasets

        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(20)  # without a network the mirrors fail fast; never hang on one
        try:
            getattr(torchvision.datasets, cls_name)(str(dest), train=True, download=True)
        finally:
            socket.setdefaulttimeout(old)
        return read_folder(dest, SIZES, "the downloaded IDX files", (f"{cls_name}/raw",))

    return fetch


@dataclass(frozen=True)
class Known:
    name: str  # as records and --dataset say it
    title: str  # as people write it
    md5: dict[str, str]  # of the four uncompressed files
    subfolders: tuple[str, ...]  # where torchvision keeps the files under its root
    # Normalisation (mean, std of the [0, 1] pixels); None: computed from the training file.
    stats: tuple[float, float] | None = None
    system: tuple[Path, ...] = ()  # folders a system package installs the files in
    downloads: tuple[tuple[str, Fetch], ...] = ()
    env: str | None = None  # an environment variable naming a folder, like --data-dir

    def cache_dir(self) -> Path:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return Path(base) / "mnist-search" / self.name

    def folder(self, data_dir: str | Path | None) -> Path | None:
        """The folder the user names: ``data_dir``, else this dataset's environment variable."""
        chosen = data_dir if data_dir not in (None, "") else None
        if chosen is None and self.env:
            chosen = os.environ.get(self.env) or None
        return Path(chosen).expanduser() if chosen else None

    def read(self, folder: Path, where: str) -> dict[str, bytes]:
        files = read_folder(folder, SIZES, f"the standard {self.title} IDX files", self.subfolders)
        verify(files, self.md5, where)
        return files


def to_dataset(known: Known, files: dict[str, bytes], source: str) -> Dataset:
    arrays = {key: torch.from_numpy(parse_idx(files[name]).copy()) for key, name in FILES.items()}
    mean, std = known.stats or pixel_stats(arrays["train_images"])
    return Dataset(
        arrays["train_images"],
        arrays["train_labels"].long(),
        arrays["test_images"],
        arrays["test_labels"].long(),
        source,
        name=known.name,
        classes=10,
        mean=mean,
        std=std,
    )


def check_data_dir(known: Known, data_dir: Path) -> dict[str, bytes]:
    """Read and verify a user-given folder; its failure is the user's error, never skipped."""
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist")
    return known.read(data_dir, str(data_dir))


def _write_cache(cache: Path, files: dict[str, bytes]) -> None:
    try:
        for name, raw in files.items():
            write_atomic(cache / name, raw)  # a crash leaves no half-written file in use
    except OSError as e:
        log.warning("could not write the cache at %s: %s", cache, e)


def load_known(
    known: Known,
    data_dir: str | Path | None = None,
    cache_dir: Path | None = None,
    download: bool = True,
) -> Dataset:
    """Verified data from the first source that has it. Logs which source was used."""
    folder = known.folder(data_dir)
    if folder is not None:
        data = to_dataset(known, check_data_dir(known, folder), f"folder {folder}")
        log.info("%s from %s (MD5 verified)", known.title, data.source)
        return data
    cache = cache_dir or known.cache_dir()
    for where, label in [(cache, "cache"), *((p, "system copy") for p in known.system)]:
        if not where.is_dir():
            continue
        try:
            files = known.read(where, f"{label} {where}")
        except DataError as e:
            log.warning("ignoring the %s %s: %s", known.title, label, e)
            continue
        log.info("%s from %s %s (MD5 verified)", known.title, label, where)
        return to_dataset(known, files, f"{label} {where}")
    if not download:
        hint = f" or set {known.env}" if known.env else ""
        raise DataError(
            f"no {known.title} found: give --data-dir{hint} to a folder of the four IDX files"
        )
    errors = []
    for name, fetch in known.downloads:
        with tempfile.TemporaryDirectory(prefix="mnist-search-") as tmp:
            log.info("fetching %s via %s", known.title, name)
            try:
                files = fetch(Path(tmp))
                verify(files, known.md5, name)
            except Exception as e:  # any failure of one source means: try the next
                errors.append(f"{name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
                log.info("%s failed: %s", name, errors[-1])
                continue
        _write_cache(cache, files)
        log.info("%s from %s (MD5 verified), cached at %s", known.title, name, cache)
        return to_dataset(known, files, name)
    raise DataError(f"no {known.title} source worked: " + "; ".join(errors))
