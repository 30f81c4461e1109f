"""The protocol: how every candidate of a study is trained and judged, and the one source of its
data split (which images are trained on, which held out for validation)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from mnist_search.data.dataset import VAL_SIZE, Dataset, Splits, make_splits
from mnist_search.data.datasets import DEFAULT, check_dataset, is_own, load_data
from mnist_search.data.mnist import TRAIN_IMAGES
from mnist_search.errors import ConfigError

MAX_EPOCHS = 10000
SHORT_REPORTS = 16


@dataclass(frozen=True, kw_only=True)
class Protocol:
    epochs: int = 1
    train_subset: int | None = None  # train on the first N images of the split's training part
    val_size: int = VAL_SIZE  # training images held out for validation
    split_seed: int = 0  # fixes which images are held out
    # Short runs are judged several times per epoch so the pruner can stop them early.
    reports_per_epoch: int = 0  # 0: 16 for runs of up to 2 epochs, else 1 (``reports_for``)
    # mnist, fashion-mnist, idx (an own folder, named by --data-dir), or idx:<fingerprint> once
    # the folder is read: what a study, a trial and a spec file record of the data.
    dataset: str = DEFAULT

    def __post_init__(self) -> None:
        problem = check_dataset(self.dataset)
        if problem:
            raise ConfigError("dataset", problem)
        if not 1 <= self.epochs <= MAX_EPOCHS:
            raise ConfigError(
                "epochs",
                f"{self.epochs}: must be at least 1"
                if self.epochs < 1
                else f"{self.epochs}: must be at most {MAX_EPOCHS}",
            )
        if is_own(self.dataset):  # its size is known once it is read (``make_splits``)
            for name in ("val_size", "train_subset"):
                value = getattr(self, name)
                if value is not None and value < 1:
                    raise ConfigError(name, f"{value}: must be at least 1")
            return
        if not 0 < self.val_size < TRAIN_IMAGES:
            raise ConfigError(
                "val_size", f"{self.val_size}: must be between 1 and {TRAIN_IMAGES - 1:,}"
            )
        room = TRAIN_IMAGES - self.val_size
        if self.train_subset is not None and not 0 < self.train_subset <= room:
            raise ConfigError(
                "train_subset",
                f"{self.train_subset}: must be between 1 and "
                f"{room:,} ({TRAIN_IMAGES:,} training images minus the "
                f"{self.val_size:,} held out for validation)",
            )

    @property
    def reports(self) -> int:
        return self.reports_for(self.epochs)

    def reports_for(self, epochs: int) -> int:
        """Reports per epoch of a training this long under this protocol: a short one is judged
        every 1/16 epoch so the pruner's first rung comes early; a long one (a final retraining)
        once per epoch, where more evaluations would only cost time."""
        return self.reports_per_epoch or (SHORT_REPORTS if epochs <= 2 else 1)

    def load(self, data_dir: str | Path | None) -> Dataset:
        """This protocol's dataset, verified (``data_dir``: the folder to read it from)."""
        return load_data(self.dataset, data_dir)

    def on(self, dataset: str) -> Protocol:
        """The same protocol naming the data as it was read (an own folder by fingerprint)."""
        return replace(self, dataset=dataset)

    def splits(self, data: Dataset, device: torch.device | str) -> Splits:
        return make_splits(
            data,
            device,
            val_size=self.val_size,
            train_subset=self.train_subset,
            split_seed=self.split_seed,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def data_split(self) -> dict[str, Any]:
        """What a spec file records of the protocol: the data a net was trained and judged on."""
        return {
            "train_subset": self.train_subset,
            "val_size": self.val_size,
            "split_seed": self.split_seed,
            "dataset": self.dataset,
        }

    def flags(self) -> str:
        """The command-line options that give this protocol, e.g. ``--epochs 2 --val-size 1000``."""
        out = [f"--epochs {self.epochs}"]
        if self.train_subset is not None:
            out.append(f"--train-subset {self.train_subset}")
        out.append(f"--val-size {self.val_size}")
        if self.dataset != DEFAULT:
            out.append(f"--dataset {self.dataset}")
        return " ".join(out)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Protocol:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in (d or {}).items() if k in known})
