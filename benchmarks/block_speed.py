"""Training-step time of the modern space's block kinds at one shape: full 3×3, depthwise-separable
and factorized (3×1 → BN → ReLU → 1×3), each as two blocks of ``--width`` channels after a 3×3
stem, with the stem pooled (14×14 maps) or not (28×28). Random inputs at ``--batch``; SGD steps
of forward, backward and update; the median over ``--runs`` timings of ``--steps`` steps each,
after warm-up steps. Prints each kind's milliseconds per step and its ratio to the full conv,
measured in the same run.

    python benchmarks/block_speed.py [--width 16] [--batch 128] [--steps 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from mnist_search.net.model import build_model
from mnist_search.net.spec import KINDS, ArchSpec, ConvLayer, count_params


def step_ms(spec: ArchSpec, batch: int, steps: int, runs: int) -> float:
    torch.manual_seed(0)
    model = build_model(spec).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))

    def one() -> None:
        opt.zero_grad()
        F.nll_loss(model(x), y).backward()
        opt.step()

    for _ in range(3):
        one()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(steps):
            one()
        times.append((time.perf_counter() - start) / steps * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {a.batch}")
    for pooled in (True, False):
        stem = [ConvLayer(8, 3, 1, pool=pooled), ConvLayer(a.width, 3, 1)]
        base = None
        for kind in KINDS:
            blocks = [ConvLayer(a.width, 3, 1, kind=kind) for _ in range(2)]
            spec = ArchSpec(tuple(stem + blocks), batchnorm=True, head="gap")
            ms = step_ms(spec, a.batch, a.steps, a.runs)
            base = base or ms
            print(
                f"{'14x14' if pooled else '28x28'} {kind:>4}: {ms:6.1f} ms/step, "
                f"{ms / base:.2f}x conv, {count_params(spec):,} params"
            )


if __name__ == "__main__":
    main()
