"""A user's own dataset: a folder of the four IDX files in MNIST's format (28×28 grayscale
images, one byte a pixel; integer labels), with no published checksum to compare.

What is checked instead: each file's size (bounded before it is read), its IDX header against
its bytes, the image shape, that labels and images agree in number, and the labels themselves
(the class count is the largest training label plus one; every class from 0 up is present in
training, and test has no label training lacks). The records name it by a fingerprint of its
bytes, ``idx:<12 hex digits>``, so a study or spec file made on it is never used on other data.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch

from mnist_search.data.dataset import Dataset, pixel_stats
from mnist_search.data.idx import FILES, DataError, md5, parse_idx, read_folder

log = logging.getLogger(__name__)

MAX_IMAGES = 250_000  # per file: bounds what a folder can make the tool hold in memory
SIDE = 28
MAX_CLASSES = 256  # labels are bytes
LIMITS = {
    FILES["train_images"]: 16 + SIDE * SIDE * MAX_IMAGES,
    FILES["train_labels"]: 8 + MAX_IMAGES,
    FILES["test_images"]: 16 + SIDE * SIDE * MAX_IMAGES,
    FILES["test_labels"]: 8 + MAX_IMAGES,
}
WHAT = "an MNIST-format dataset: 28x28 grayscale images and their labels, raw or .gz"


def fingerprint(files: dict[str, bytes]) -> str:
    """12 hex digits of the MD5 of the four files' MD5s, in a fixed order."""
    joined = "".join(md5(files[name]) for name in FILES.values())
    return hashlib.md5(joined.encode()).hexdigest()[:12]


def _parse(folder: Path, files: dict[str, bytes], key: str) -> torch.Tensor:
    name = FILES[key]
    try:
        array = parse_idx(files[name])
    except DataError as e:
        raise DataError(f"{folder / name}: {e}") from None
    images = key.endswith("images")
    if images and (array.ndim != 3 or array.shape[1:] != (SIDE, SIDE)):
        raise DataError(
            f"{folder / name}: images of shape {list(array.shape)}; expected N x 28 x 28 "
            "(grayscale 28x28, one byte a pixel)"
        )
    if not images and array.ndim != 1:
        raise DataError(f"{folder / name}: labels of shape {list(array.shape)}; expected [N]")
    if array.shape[0] < 1:
        raise DataError(f"{folder / name}: holds no {'images' if images else 'labels'}")
    return torch.from_numpy(array.copy())


def load_own(data_dir: str | Path | None) -> Dataset:
    if data_dir in (None, ""):
        raise DataError(
            "--dataset idx needs --data-dir: a folder of train-images-idx3-ubyte, "
            "train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte "
            "(raw or .gz)"
        )
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist")
    files = read_folder(folder, LIMITS, WHAT)
    t = {key: _parse(folder, files, key) for key in FILES}
    for split in ("train", "test"):
        n_img, n_lab = len(t[f"{split}_images"]), len(t[f"{split}_labels"])
        if n_img != n_lab:
            raise DataError(
                f"{folder / FILES[split + '_labels']}: {n_lab:,} labels for {n_img:,} images "
                f"in {FILES[split + '_images']}"
            )
    train_labels, test_labels = t["train_labels"].long(), t["test_labels"].long()
    classes = int(train_labels.max()) + 1
    present = torch.bincount(train_labels, minlength=classes)
    if classes < 2:
        raise DataError(
            f"{folder / FILES['train_labels']}: every label is 0; a dataset needs at least 2 "
            "classes, labelled 0, 1, ..."
        )
    if (present == 0).any():
        gap = int((present == 0).nonzero()[0])
        raise DataError(
            f"{folder / FILES['train_labels']}: no training image has label {gap}; labels must "
            f"be 0 to {classes - 1}, each present"
        )
    if int(test_labels.max()) >= classes:
        raise DataError(
            f"{folder / FILES['test_labels']}: label {int(test_labels.max())}, but the training "
            f"labels are 0 to {classes - 1}"
        )
    mean, std = pixel_stats(t["train_images"])
    if std < 1e-3:
        raise DataError(
            f"{folder / FILES['train_images']}: every pixel is the same; nothing to learn"
        )
    name = f"idx:{fingerprint(files)}"
    log.info(
        "own IDX folder %s: no published checksum to compare; %d classes; recorded as %s",
        folder,
        classes,
        name,
    )
    return Dataset(
        t["train_images"],
        train_labels,
        t["test_images"],
        test_labels,
        f"folder {folder} (own data, {name})",
        name=name,
        classes=classes,
        mean=mean,
        std=std,
    )
