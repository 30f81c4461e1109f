"""Several worker processes on one study: seeds, devices, and starting and stopping them."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Any

import torch

# A large odd stride keeps the workers' sampler seeds apart for any base seed.
SEED_STRIDE = 1_000_003


def worker_seed(base: int, rank: int) -> int:
    """Workers sharing one sampler seed would propose the same trials; each gets its own."""
    return (base + SEED_STRIDE * rank) % 2**32


def worker_device(name: str, device: torch.device, rank: int) -> torch.device:
    """On a machine with several GPUs, 'auto' and 'cuda' mean round-robin over them; a device
    named with its index (cuda:1) is used by every worker."""
    if name.strip().lower() in ("auto", "cuda") and device.type == "cuda" \
            and torch.cuda.device_count() > 1:
        return torch.device("cuda", rank % torch.cuda.device_count())
    return device


def run_workers(args: list[Any], n: int) -> list[int]:
    """Run ``mnist-search <args> --rank r`` for r in 0..n-1 and wait for all of them."""
    procs = [subprocess.Popen([sys.executable, "-m", "mnist_search", *map(str, args),
                               "--rank", str(r)]) for r in range(n)]
    try:
        return [p.wait() for p in procs]
    except KeyboardInterrupt:
        # Ctrl-C reaches the whole process group; give the workers time to mark their trials.
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        return [p.wait() for p in procs]
