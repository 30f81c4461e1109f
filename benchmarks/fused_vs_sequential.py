"""K candidates of one default-space net trained as one fused (K-wide) net, against the same
candidates trained one after another.

The net is a BatchNorm, depthwise-separable net of the default (modern) space, the shipped
one-epoch net fitted to --budget. Each candidate has its own seed, batch order and learning rate.
Sequential throughput is one candidate's training images per second (K sequential runs take K
times as long, so their throughput is the same for every K); fused throughput counts all K
candidates' images. Median over --runs after one warm-up run; validation excluded from neither
(one report per epoch, as in a search).

    python benchmarks/fused_vs_sequential.py [--device cuda] [--k 1,4,16,64] [--images 55000]
    python benchmarks/fused_vs_sequential.py --quick     # a CPU dry run of the script
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import date

import torch

from mnist_search.data.dataset import make_splits
from mnist_search.data.mnist import load_mnist
from mnist_search.net.spec import count_params, describe
from mnist_search.search.warmstart import known_nets
from mnist_search.spaces import modern
from mnist_search.spaces.modern import build, fit_widths
from mnist_search.training.fused import train_fused
from mnist_search.training.loop import Speed, TrainConfig, train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--k", default="1,4,16,64")
    ap.add_argument("--images", type=int, default=55000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--budget", type=int, default=25000)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to check the script")
    ap.add_argument("--data-dir", default=os.environ.get("MNIST_SEARCH_DATA"))
    args = ap.parse_args()
    # The dry run takes CUDA's defaults (channels_last, bf16 autocast) on the CPU, so it goes the
    # GPU's way: a layout bug once surfaced only on the GPU.
    speed = Speed(amp=True, channels_last=True) if args.quick else Speed()
    if args.quick:
        args.k, args.images, args.runs = "1,2", 512, 1
    device = torch.device(args.device)
    splits = make_splits(load_mnist(args.data_dir), device, val_size=5000, train_subset=args.images)
    net = next(n for n in known_nets() if n.name == "found/onepoch-25000.json")
    spec = build(fit_widths(modern.spec_params(net.spec), args.budget))

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def cfgs(k: int) -> list[TrainConfig]:
        return [
            TrainConfig(
                batch_size=128,
                optimizer="sgd",
                lr=0.05 * (1 + s / 8),
                momentum=0.9,
                nesterov=True,
                schedule="onecycle",
                seed=s,
            )
            for s in range(k)
        ]

    def timed(fn) -> float:
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - t0

    print(
        f"net: {describe(spec)} ({count_params(spec):,} parameters), {args.images:,} images, "
        f"batch 128, device {device}",
        flush=True,
    )
    one = cfgs(1)[0]
    seq = [
        args.images / timed(lambda: train(spec, one, splits, evaluate_test=False, speed=speed))
        for _ in range(args.runs + 1)
    ][1:]
    a = statistics.median(seq)
    lines = [f"sequential {a:,.0f} img/s"]
    print(lines[0], flush=True)
    for k in map(int, args.k.split(",")):
        c = cfgs(k)
        fus = [
            k
            * args.images
            / timed(lambda: train_fused(spec, c, splits, evaluate_test=False, speed=speed))
            for _ in range(args.runs + 1)
        ][1:]
        b = statistics.median(fus)
        line = f"K={k}: fused {b:,.0f} img/s, {b / a:.2f}x sequential"
        print(line, flush=True)
        lines.append(line)
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({os.cpu_count()} cores)"
    )
    print(
        f"\nrecord: | {date.today()} | fused_vs_sequential.py | {where} | torch "
        f"{torch.__version__} | {args.runs} runs, median, {args.images} images | "
        + "; ".join(lines)
        + " |"
    )


if __name__ == "__main__":
    main()
