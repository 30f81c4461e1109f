"""Which dataset: the names ``--dataset`` takes and the one call that loads any of them."""

from __future__ import annotations

import re
from pathlib import Path

from mnist_search.data.dataset import Dataset
from mnist_search.data.idx import DataError

DATASETS = ("mnist", "fashion-mnist", "idx")
DEFAULT = "mnist"
_OWN = re.compile(r"idx:[0-9a-f]{12}")
VALID = "mnist, fashion-mnist, or idx (your own folder of IDX files, given with --data-dir)"


def check_dataset(value: object) -> str | None:
    """None when ``value`` names a dataset (``idx:<fingerprint>`` is a recorded own folder),
    else what is wrong with it."""
    if isinstance(value, str) and (value in DATASETS or _OWN.fullmatch(value)):
        return None
    return f"{value!r:.60}: valid: {VALID}"


def is_own(name: str) -> bool:
    return name == "idx" or name.startswith("idx:")


def load_data(
    dataset: str = DEFAULT,
    data_dir: str | Path | None = None,
    cache_dir: Path | None = None,
    download: bool = True,
) -> Dataset:
    """The dataset, verified (MNIST and Fashion-MNIST against their MD5 sums; an own folder by
    its format, and against the fingerprint a record names)."""
    problem = check_dataset(dataset)
    if problem:
        raise DataError(f"--dataset {problem}")
    if dataset == "mnist":
        from mnist_search.data.mnist import load_mnist

        return load_mnist(data_dir, cache_dir, download)
    if dataset == "fashion-mnist":
        from mnist_search.data.fashion import load_fashion

        return load_fashion(data_dir, cache_dir, download)
    from mnist_search.data.own import load_own

    data = load_own(data_dir)
    if dataset != "idx" and data.name != dataset:
        raise DataError(
            f"{data_dir} holds {data.name}, not {dataset} (the data this was made on); give "
            "the folder it was made on, or --dataset idx to use this one anyway"
        )
    return data
