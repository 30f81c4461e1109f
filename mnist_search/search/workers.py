"""Several worker processes on one study: their devices, and starting and stopping them.

A worker gets the search's config (serialized) and its rank on its standard input, never on its
command line, so nothing of the config (a storage password, say) shows in the process list.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import torch


def worker_device(name: str, device: torch.device, rank: int) -> torch.device:
    """On a machine with several GPUs, 'auto' and 'cuda' mean round-robin over them; a device
    named with its index (cuda:1) is used by every worker."""
    if (
        name.strip().lower() in ("auto", "cuda")
        and device.type == "cuda"
        and torch.cuda.device_count() > 1
    ):
        return torch.device("cuda", rank % torch.cuda.device_count())
    return device


def run_workers(config_json: str, n: int, cpu: bool = False) -> list[int]:
    """Start ``python -m mnist_search.search.worker`` n times, ranks 0..n-1, and wait for all of them.

    On a CPU the workers share the cores: each gets cores/n threads instead of all of them, as N
    processes with a thread per core each would oversubscribe the machine.
    """
    env = dict(os.environ)
    if cpu and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // n))
    procs = []
    for rank in range(n):
        p = subprocess.Popen(
            [sys.executable, "-m", "mnist_search.search.worker"],
            env=env,
            stdin=subprocess.PIPE,
            text=True,
        )
        assert p.stdin is not None  # stdin=PIPE
        p.stdin.write(json.dumps({"config": json.loads(config_json), "rank": rank}))
        p.stdin.close()
        procs.append(p)
    try:
        return [p.wait() for p in procs]
    except KeyboardInterrupt:
        # Ctrl-C reaches the whole process group, a scheduler's SIGTERM only this process:
        # pass it on, give the workers time to mark their trials, then stop here too.
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            _wait_through_signals(p)
        raise


def _wait_through_signals(p: subprocess.Popen) -> None:
    """Wait for a worker even if a second Ctrl-C or SIGTERM arrives meanwhile."""
    while True:
        try:
            p.wait()
            return
        except KeyboardInterrupt:
            continue
