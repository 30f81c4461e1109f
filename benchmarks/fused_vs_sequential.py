"""K same-shape candidates trained in one fused step against the same K trained one after another.

Candidates are seed replicas of the Exp5 net (batch 128, SGD), each on its own batch order; the
figure is total training images per second over all K, median over runs, and the fused /
sequential ratio. On a CPU the fused step is slower (vmapped convolutions have no fast CPU
kernel); the point of fusing is a GPU, where K tiny nets alone leave it mostly idle.

    python benchmarks/fused_vs_sequential.py [--device cuda] [--k 4,16] [--images 12800]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import date

import torch

from mnist_search.data import load_mnist, make_splits
from mnist_search.experiments import get_experiment
from mnist_search.fused import train_fused
from mnist_search.train import Speed, TrainConfig, train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--k", default="4,16")
    ap.add_argument("--images", type=int, default=12800)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data-dir", default=os.environ.get("MNIST_SEARCH_DATA"))
    args = ap.parse_args()
    device = torch.device(args.device)
    splits = make_splits(load_mnist(args.data_dir), device, val_size=5000,
                         train_subset=args.images)
    spec = get_experiment(5).spec
    # The same float32 arithmetic on both sides: no autocast, default memory format.
    plain = Speed(amp=False, channels_last=False)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    lines = []
    for k in map(int, args.k.split(",")):
        cfgs = [TrainConfig(batch_size=128, lr=0.01, momentum=0.9, seed=s) for s in range(k)]
        seq, fus = [], []
        for run in range(args.runs + 1):  # the first run warms up and is not counted
            sync()
            t0 = time.perf_counter()
            for c in cfgs:
                train(spec, c, splits, evaluate_test=False, speed=plain)
            sync()
            t1 = time.perf_counter()
            train_fused(spec, cfgs, splits, evaluate_test=False)
            sync()
            t2 = time.perf_counter()
            if run:
                seq.append(k * args.images / (t1 - t0))
                fus.append(k * args.images / (t2 - t1))
        a, b = statistics.median(seq), statistics.median(fus)
        line = (f"K={k}: sequential {a:,.0f} img/s, fused {b:,.0f} img/s, ratio {b / a:.2f}x")
        print(line, flush=True)
        lines.append(line)
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"CPU ({os.cpu_count()} cores)")
    print(f"\nRESULTS.md line: | {date.today()} | fused_vs_sequential.py | {where} | torch "
          f"{torch.__version__} | {args.runs} runs, median, {args.images} images, validation "
          "included | " + "; ".join(lines) + " |")


if __name__ == "__main__":
    main()
