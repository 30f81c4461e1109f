"""The bookkeeping every trainer shares, whatever it steps: batches per epoch, where validation
runs and on what, the deadline checked every batch, and the wall time split into training and
evaluation. ``train`` (one net) and ``train_fused`` (K nets as one) differ only in what a step
is; this is the rest, written once."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from mnist_search.data.dataset import Split

# A report inside an epoch judges the first this-many validation images (a random sample: the
# split is a permutation); each epoch's last report judges all of them. Sixteen reports of a
# one-epoch trial on all 5,000 would cost more evaluation than its training; the rungs that
# prune early compare nets whose accuracies differ by more than this sample's noise.
INTERIM_VAL = 1000


class TimeUp(RuntimeError):
    """Training passed its deadline."""


def report_points(steps_per_epoch: int, reports: int) -> list[int]:
    """Batch indices (0-based, within an epoch) after which validation runs; the last is the end."""
    reports = min(reports, steps_per_epoch)
    return sorted({math.ceil(k * steps_per_epoch / reports) - 1 for k in range(1, reports + 1)})


def interim(val: Split) -> Split:
    """The part of the validation split judged at reports inside an epoch (``INTERIM_VAL``)."""
    if len(val) <= INTERIM_VAL:
        return val
    return Split(val.images[:INTERIM_VAL], val.labels[:INTERIM_VAL])


def batches_per_epoch(n: int, batch_size: int) -> int:
    """Every image once per epoch, except that a last batch of one image is left out: BatchNorm
    cannot normalise a single value per channel. (The permutation changes every epoch, so no
    image is left out for good.)"""
    if n > 1 and n % batch_size == 1:
        return n // batch_size
    return math.ceil(n / batch_size)


def sync(device: torch.device) -> None:
    """Wait for the device, so that a clock read after it measures finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Timing:
    seconds: float  # wall time of the whole training, evaluation included
    train_seconds: float  # optimisation steps only
    images_per_second: float  # training images per second, evaluation excluded


class Steps:
    """One training's epochs and batches, as index ranges into a permutation of ``n`` images.

    ``batches()`` raises TimeUp once ``time.time()`` passes ``deadline`` (checked every batch, so
    a slow net cannot overrun a search's time limit by a whole epoch); ``judge_on(b)`` says
    which validation images to judge after batch ``b``, if any; ``evaluating()`` keeps the time
    spent judging out of the training speed; ``step`` counts the reports made so far.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        epochs: int,
        reports_per_epoch: int,
        val: Split,
        device: torch.device,
        deadline: float | None = None,
    ):
        self.start = time.perf_counter()
        self.n, self.bs, self.epochs = n, min(batch_size, n), epochs
        self.per_epoch = batches_per_epoch(n, self.bs)
        self.total = epochs * self.per_epoch  # optimisation steps in the whole training
        self.points = set(report_points(self.per_epoch, reports_per_epoch))
        self.val, self.quick = val, interim(val)
        self.device, self.deadline = device, deadline
        self.eval_seconds = 0.0
        self.step = 0

    def batches(self, epoch: int) -> Iterator[tuple[int, slice]]:
        """Epoch ``epoch``'s batches: (index in the epoch, the slice of the permutation)."""
        for b in range(self.per_epoch):
            if self.deadline is not None and time.time() > self.deadline:
                raise TimeUp(
                    f"time limit reached at epoch {epoch + 1}, batch {b + 1}/{self.per_epoch}"
                )
            yield b, slice(b * self.bs, (b + 1) * self.bs)

    def judge_on(self, b: int) -> Split | None:
        """The validation images to judge after batch ``b``: the interim sample inside an
        epoch, all of them at its end; None where no report falls."""
        if b not in self.points:
            return None
        return self.val if b == self.per_epoch - 1 else self.quick

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        sync(self.device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            sync(self.device)
            self.eval_seconds += time.perf_counter() - t0

    def timing(self) -> Timing:
        sync(self.device)
        seconds = time.perf_counter() - self.start
        train_seconds = max(seconds - self.eval_seconds, 1e-9)
        return Timing(seconds, train_seconds, self.epochs * self.n / train_seconds)
