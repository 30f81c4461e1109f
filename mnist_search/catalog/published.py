"""The best published small MNIST nets, as points the frontier is drawn against. Most are single
runs whose best epoch was picked on the test set; the frontier reports a 3-seed mean chosen on
validation. Each entry names where its figure comes from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedNet:
    n_params: int
    test_accuracy: float  # %
    epochs: int | None
    source: str
    note: str = ""


PUBLISHED: tuple[PublishedNet, ...] = (
    PublishedNet(697, 99.03, None, "JoshWarn/Parameter-Efficient-MNIST", "best of about 700 runs"),
    PublishedNet(
        997,
        98.76,
        200,
        "JoshWarn/Parameter-Efficient-MNIST",
        "mean of 223 runs (997_saved_acc.txt)",
    ),
    PublishedNet(1936, 99.10, 75, "ruslangrimov/mnist-minimal-model", "one run"),
    PublishedNet(2180, 99.15, 71, "ruslangrimov/mnist-minimal-model", "one run"),
    PublishedNet(4142, 99.17, 50, "ruslangrimov/mnist-minimal-model", "one run"),
    PublishedNet(4862, 99.07, 50, "ruslangrimov/mnist-minimal-model", "one run"),
    PublishedNet(19898, 99.54, 16, "pradeep6kumar/mnist_994", "best epoch"),
)


def published_for(dataset: str) -> tuple[PublishedNet, ...]:
    """The published nets a frontier on ``dataset`` is drawn against: MNIST's; none is listed
    yet for another dataset (no small Fashion-MNIST net with a stated parameter count and
    selection rule has been found to cite)."""
    return PUBLISHED if dataset == "mnist" else ()


# What each budget's final retrainings may last: the lengths the published nets at that size use.
EPOCH_CAPS: tuple[tuple[int, int], ...] = ((1000, 100), (2000, 60), (5000, 30))
LONGEST_ELSE = 20


def epoch_cap(budget: int) -> int:
    """The most epochs a final retraining at ``budget`` may get."""
    for upto, cap in EPOCH_CAPS:
        if budget <= upto:
            return cap
    return LONGEST_ELSE
