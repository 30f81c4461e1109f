"""CPU training without a page fault per activation.

glibc hands every block over 128 KiB to the OS with mmap and takes it back on free, so each
training step of a conv net re-faults its activations page by page: on 2 cores that was a third
of the time (system time) and halved throughput. Raising the mmap and trim thresholds keeps freed
blocks in the heap for the next step. Measured with benchmarks/trainer_vs_seed.py; set
MNIST_SEARCH_NO_MALLOPT=1 to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

log = logging.getLogger(__name__)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
_done = False


def keep_freed_memory() -> bool:
    """Apply once per process; True when the allocator was tuned."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("MNIST_SEARCH_NO_MALLOPT"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = all(
            libc.mallopt(opt, value) == 1
            for opt, value in (
                (M_MMAP_THRESHOLD, 1 << 30),
                (M_TRIM_THRESHOLD, 1 << 30),
                (M_TOP_PAD, 256 << 20),
            )
        )
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    _done = ok
    return ok


def release_freed_memory() -> None:
    """Hand the heap's free blocks back to the OS (after a training, whose sizes the next one
    will not reuse): the kept memory is for one net's steps, not for every net a search tries."""
    if not _done:
        return
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


F = TypeVar("F", bound=Callable[..., Any])


def one_heap_per_training(train_fn: F) -> F:
    """For a training function ``(spec, cfg, splits, ...)``: on the CPU the heap keeps freed
    memory while it runs and hands it back when it ends, however it ends: a trial stopped by
    the pruner, the time limit, a diverging loss or Ctrl-C must not leave its heap to the next
    net, whose other shapes would grow it further."""

    @wraps(train_fn)
    def wrapper(spec: Any, cfg: Any, splits: Any, *args: Any, **kwargs: Any) -> Any:
        cpu = splits.train.images.device.type == "cpu"
        if cpu:
            keep_freed_memory()
        try:
            return train_fn(spec, cfg, splits, *args, **kwargs)
        finally:
            if cpu:
                release_freed_memory()

    return wrapper  # type: ignore[return-value]
