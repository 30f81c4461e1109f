"""Mean ± standard deviation over runs (seeds), the one way the tool summarises repeated runs."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
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


def stat(values: Sequence[float | None]) -> Stat | None:
    """Mean ± std of the values that are there; None when there are none."""
    there = [v for v in values if v is not None]
    return stat_of(there) if there else None


def stat_of(values: Sequence[float]) -> Stat:
    """Mean ± std of at least one value (of runs that all finished)."""
    if not values:
        raise ValueError("no values to summarise")
    return Stat(
        statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values)
    )


def pct(v: float | None) -> str:
    """An accuracy as a table cell: two decimals and a percent sign, '-' when there is none."""
    return "-" if v is None else f"{v:.2f}%"
