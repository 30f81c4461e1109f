"""Pay once per process what the first training on a device would otherwise be charged.

The first training in a process loads the device's kernels, creates the cuDNN and cuBLAS handles
and grows the allocator; on a GPU that made the first trials several times slower than the rest,
which both misranked them and misled the final stage's time estimate. A few steps of a small net
(and of a fused group, when the search fuses) before the first trial move that cost out of it.
"""

from __future__ import annotations

import dataclasses
import time

import torch

from mnist_search.data.dataset import Split, Splits
from mnist_search.net.spec import ArchSpec
from mnist_search.training.fused import train_fused
from mnist_search.training.loop import Speed, TrainConfig, train

WARM_IMAGES = 256


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def warm_up(
    spec: ArchSpec, splits: Splits, speed: Speed = Speed(), k: int = 1, batch_size: int = 128
) -> float:
    """Train ``spec`` for two steps (alone, and as a fused group of ``k``) on a few images.
    Returns the seconds it took. Touches no study and no global random state."""
    start = time.perf_counter()
    device = splits.train.images.device
    small = Split(splits.train.images[:WARM_IMAGES], splits.train.labels[:WARM_IMAGES])
    few = dataclasses.replace(splits, train=small, val=small, test=small)
    cfg = TrainConfig(batch_size=min(batch_size, WARM_IMAGES // 2), lr=0.01, seed=0)
    speed = dataclasses.replace(speed, compile=False)  # compiling is per net, not per process
    rng = torch.random.get_rng_state()
    try:
        train(spec, cfg, few, speed=speed)
        if k > 1:
            train_fused(spec, [cfg] * k, few, speed=speed)
    finally:
        torch.random.set_rng_state(rng)
    _sync(device)
    return time.perf_counter() - start
