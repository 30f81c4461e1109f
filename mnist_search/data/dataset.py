"""A loaded dataset (uint8 images and labels, with what it is and how it is normalised) and its
split into train / validation / test on the training device."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mnist_search.data.idx import DataError

# Training images held out for model selection unless told otherwise: the one default of it
# (``Protocol`` takes it from here; the commands' --val-size is checked against it by a test).
VAL_SIZE = 5000


@dataclass
class Dataset:
    """The full dataset as uint8 images [N, 28, 28] and int64 labels [N], on one device.

    ``name`` is what records say it is: ``mnist``, ``fashion-mnist``, or ``idx:<fingerprint>``
    for a user's own folder (the fingerprint is the files' MD5, so another folder with the same
    bytes is the same dataset). ``mean`` and ``std`` normalise its pixels (scaled to [0, 1]):
    the statistics of its own training file.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str
    name: str = "mnist"
    classes: int = 10
    mean: float = 0.1307
    std: float = 0.3081

    def to(self, device: torch.device | str) -> Dataset:
        return Dataset(
            self.train_images.to(device),
            self.train_labels.to(device),
            self.test_images.to(device),
            self.test_labels.to(device),
            self.source,
            self.name,
            self.classes,
            self.mean,
            self.std,
        )


def pixel_stats(images_u8: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of the pixels scaled to [0, 1], in float64 (one pass over
    60,000 images in slices, so memory stays bounded)."""
    total = total_sq = 0.0
    count = images_u8.numel()
    for part in images_u8.reshape(-1).split(1 << 24):
        x = part.double() / 255.0
        total += float(x.sum())
        total_sq += float((x * x).sum())
    mean = total / count
    return mean, max(total_sq / count - mean * mean, 1e-12) ** 0.5


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
    dataset: str = "mnist"
    classes: int = 10
    mean: float = 0.1307
    std: float = 0.3081

    @property
    def background(self) -> float:
        """The value a black pixel has after normalisation (what augmentation pads with)."""
        return (0.0 - self.mean) / self.std


def normalise(images_u8: torch.Tensor, mean: float = 0.1307, std: float = 0.3081) -> torch.Tensor:
    return ((images_u8.float() / 255.0 - mean) / std).unsqueeze(1)


def make_splits(
    data: Dataset,
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
        raise DataError(
            f"--val-size {val_size}: must be between 1 and {n - 1:,} ({data.name} has "
            f"{n:,} training images)"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    if train_subset is not None:
        if not 0 < train_subset <= train_idx.numel():
            raise DataError(
                f"--train-subset {train_subset}: must be between 1 and {train_idx.numel():,} "
                f"({data.name}'s {n:,} training images minus the {val_size:,} held out)"
            )
        train_idx = train_idx[:train_subset]
    device = torch.device(device)
    images, labels = data.train_images, data.train_labels

    def put(x: torch.Tensor, y: torch.Tensor) -> Split:
        # uint8 travels to the device (4x less traffic), normalisation happens there, once.
        return Split(normalise(x.to(device), data.mean, data.std), y.to(device))

    return Splits(
        put(images[train_idx], labels[train_idx]),
        put(images[val_idx], labels[val_idx]),
        put(data.test_images, data.test_labels),
        data.source,
        data.name,
        data.classes,
        data.mean,
        data.std,
    )
