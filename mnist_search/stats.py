"""Mean ± standard deviation over runs (seeds), the one way the tool summarises repeated runs."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float  # sample standard deviation; 0 for one run
    n: int

    def __str__(self) -> str:
        # One run has no spread to show.
        return f"{self.mean:.2f}" if self.n == 1 else f"{self.mean:.2f} ± {self.std:.2f}"

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std, "n": self.n}


def stat(values: list[float]) -> Stat | None:
    """Mean ± std of ``values``; None when there are none."""
    if not values:
        return None
    return Stat(
        statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values)
    )
