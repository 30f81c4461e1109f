"""The product's trainer against a seed-style loop, on the same net, data and batch size.

Seed-style: torchvision ``datasets.MNIST`` + ``DataLoader(shuffle=True)`` + per-sample transforms
(``ToTensor``, ``Normalize``, and ``RandomAffine`` when augmenting) + the write-up's loop (SGD with
momentum, ``nll_loss`` on log-softmax). The trainer: data on the device as one normalised tensor,
batches as slices of an index permutation, augmentation on whole batches. Same architecture
(Exp5), same optimiser settings, same images; evaluation is excluded from both timings.

Prints training images per second (median over runs) and the trainer / seed ratio for batch 128 and
512, with and without augmentation; with --full-epoch also seconds per full-MNIST epoch (55,000
images) for the Exp5 net and a ~25K BatchNorm net.

    python benchmarks/trainer_vs_seed.py [--images 6400] [--runs 3] [--device cpu] [--full-epoch]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F

from mnist_search.catalog.experiments import get_experiment
from mnist_search.data.dataset import make_splits
from mnist_search.data.idx import FILES, encode_idx
from mnist_search.data.mnist import load_mnist
from mnist_search.net.model import build_model
from mnist_search.net.spec import ArchSpec, ConvLayer, count_params
from mnist_search.training.loop import TrainConfig, train

BN25K = ArchSpec(
    (
        ConvLayer(16, 3, 1, True),
        ConvLayer(32, 3, 1, True),
        ConvLayer(64, 3, 1),
        ConvLayer(10, 1, 0),
    ),
    batchnorm=True,
    head="gap",
    hidden=(40,),
)


def seed_style(
    raw_root: str, n: int, batch: int, augment: bool, device: torch.device, seed: int
) -> float:
    from torchvision import datasets, transforms

    tf = [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
    if augment:  # the trainer's "small": +-10 degrees, +-2 pixels
        tf.insert(0, transforms.RandomAffine(degrees=10, translate=(2 / 28, 2 / 28)))
    ds = datasets.MNIST(raw_root, train=True, download=False, transform=transforms.Compose(tf))
    ds = torch.utils.data.Subset(ds, range(n))
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True)
    model = build_model(get_experiment(5).spec).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    start = time.perf_counter()
    for data, target in loader:
        data, target = data.to(device), target.to(device)
        opt.zero_grad()
        loss = F.nll_loss(model(data), target)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def ours(splits, batch: int, augment: bool, seed: int, spec=None) -> float:
    cfg = TrainConfig(
        batch_size=batch, lr=0.01, momentum=0.9, seed=seed, augment="small" if augment else "none"
    )
    return train(spec or get_experiment(5).spec, cfg, splits, evaluate_test=False).images_per_second


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=6400)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data-dir", default=os.environ.get("MNIST_SEARCH_DATA"))
    ap.add_argument("--full-epoch", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    data = load_mnist(args.data_dir)
    splits = make_splits(data, device, val_size=5000, train_subset=args.images)
    # torchvision reads MNIST/raw/*-ubyte under its root: write the verified files there.
    tmp = tempfile.mkdtemp()
    raw = Path(tmp, "MNIST", "raw")
    raw.mkdir(parents=True)
    # The seed-style loop takes the first N images of the same held-out-free order we train on.
    idx = torch.randperm(60000, generator=torch.Generator().manual_seed(0))[
        5000 : 5000 + args.images
    ]
    arrays = {
        "train_images": data.train_images[idx],
        "train_labels": data.train_labels[idx],
        "test_images": data.test_images,
        "test_labels": data.test_labels,
    }
    for key, name in FILES.items():
        (raw / name).write_bytes(encode_idx(arrays[key].numpy()))
    where = f"{device.type}" + (
        f" ({torch.cuda.get_device_name(device)})"
        if device.type == "cuda"
        else f" ({os.cpu_count()} cores)"
    )
    print(
        f"device {where}, torch {torch.__version__}, {args.images} images, "
        f"{args.runs} runs, median images/s (training only)"
    )
    lines = []
    for batch in (128, 512):
        for aug in (False, True):
            ours(splits, batch, aug, 0)  # warm-up (allocator, kernels)
            a = statistics.median(
                seed_style(tmp, args.images, batch, aug, device, s) for s in range(args.runs)
            )
            b = statistics.median(ours(splits, batch, aug, s) for s in range(args.runs))
            line = (
                f"Exp5 batch {batch}, {'augmented' if aug else 'no augmentation'}: seed-style "
                f"{a:,.0f} img/s, trainer {b:,.0f} img/s, ratio {b / a:.2f}x"
            )
            print(line, flush=True)
            lines.append(line)
    if args.full_epoch:
        full = make_splits(data, device, val_size=5000)
        for name, spec in (
            ("Exp5", get_experiment(5).spec),
            (f"BN {count_params(BN25K):,}", BN25K),
        ):
            r = train(
                spec, TrainConfig(batch_size=128, lr=0.01, momentum=0.9), full, evaluate_test=False
            )
            line = f"{name}: {55000 / r.images_per_second:.2f} s per full-MNIST epoch (batch 128)"
            print(line, flush=True)
            lines.append(line)
    print(
        f"\nrecord: | {date.today()} | trainer_vs_seed.py | {where} | torch "
        f"{torch.__version__} | {args.runs} runs, median | " + "; ".join(lines) + " |"
    )


if __name__ == "__main__":
    main()
