"""bf16 autocast on the CPU: training speed and accuracy against float32, on the shipped nets.

For each shipped net (``mnist_search/catalog/found/``) named below, one epoch on the 55,000 training
images with its own recipe, float32 and bf16 autocast (``Speed(amp=True)``, which the trainer
honours on the CPU only when asked), ``--runs`` seeds each; prints the median training images
per second, the ratio, and mean validation accuracy of each. Evaluation is float32 in both.

    python benchmarks/cpu_bf16.py [--nets onepoch-25000,budget-5000,budget-1000] [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from importlib import resources

import torch

from mnist_search.data.mnist import load_mnist
from mnist_search.net.spec import ArchSpec, count_params
from mnist_search.training.loop import Speed, TrainConfig, train
from mnist_search.training.protocol import Protocol


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nets", default="onepoch-25000,budget-5000,budget-1000")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--subset", type=int, default=None, help="quick runs only")
    args = ap.parse_args()
    splits = Protocol(train_subset=args.subset).splits(
        load_mnist(os.environ.get("MNIST_SEARCH_DATA")), "cpu"
    )
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}"
    )
    print("| net | params | fp32 img/s | bf16 img/s | ratio | fp32 val | bf16 val |")
    print("|---|---|---|---|---|---|---|")
    found = resources.files("mnist_search.catalog").joinpath("found")
    for name in args.nets.split(","):
        body = json.loads(found.joinpath(f"{name}.json").read_text())
        spec = ArchSpec.from_dict(body["spec"])
        row = {}
        for amp in (False, True):
            speeds, vals = [], []
            for seed in range(args.runs):
                cfg = TrainConfig(epochs=1, seed=seed, reports_per_epoch=1, **body["training"])
                r = train(spec, cfg, splits, evaluate_test=False, speed=Speed(amp=amp))
                speeds.append(r.images_per_second)
                vals.append(r.val_accuracy)
            row[amp] = (statistics.median(speeds), statistics.fmean(vals))
        print(
            f"| {name} | {count_params(spec):,} | {row[False][0]:,.0f} | {row[True][0]:,.0f} | "
            f"{row[True][0] / row[False][0]:.2f} | {row[False][1]:.2f} | {row[True][1]:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
