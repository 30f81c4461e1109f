"""A space-filling start for a search: the first trials cover the space's choices evenly (a Latin
hypercube), instead of the sampler's uniform random draws, which at a budget of 25,000 gave nets
of 3.5K–12K parameters and training settings that do not learn.

The design runs a space's own ``suggest_spec`` on a stand-in trial that answers each question
from one row of the hypercube, so every structural choice stays feasible by construction and no
space has to describe itself twice. A space adds what it knows on top (``Space.startup``): how
much of the budget a net uses and a recipe prior.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

COLUMNS = 48  # more than any space asks questions per trial


def latin_hypercube(n: int, d: int, seed: int) -> np.ndarray:
    """``n`` points in [0, 1)^d, one in each of the n equal slices of every axis."""
    rng = np.random.default_rng(seed)
    slices = np.stack([rng.permutation(n) for _ in range(d)], axis=1)
    return (slices + rng.random((n, d))) / n


class DesignTrial:
    """Answers ``suggest_*`` from one row of uniforms: the k-th new parameter name asked gets
    column k. The answers are recorded in ``params``."""

    def __init__(self, row: Sequence[float]):
        self.row = row
        self.params: dict[str, Any] = {}
        self._columns: dict[str, int] = {}

    def uniform(self, name: str) -> float:
        if name not in self._columns:
            if len(self._columns) >= len(self.row):
                raise IndexError(f"the design has {len(self.row)} columns; {name!r} is one more")
            self._columns[name] = len(self._columns)
        return float(self.row[self._columns[name]])

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        value = choices[min(len(choices) - 1, int(self.uniform(name) * len(choices)))]
        self.params[name] = value
        return value

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False, step: int = 1):
        u = self.uniform(name)
        if step > 1:  # one of low, low + step, ..., high, each as likely
            value = low + step * min((high - low) // step, int(u * ((high - low) // step + 1)))
            self.params[name] = value
            return value
        if log:
            x = math.exp(math.log(low - 0.5 + 1e-9) + u * (math.log(high + 0.5) - math.log(low)))
        else:
            x = low - 0.5 + u * (high - low + 1)
        value = min(high, max(low, round(x)))
        self.params[name] = value
        return value

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        u = self.uniform(name)
        if log:
            value = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
        else:
            value = low + u * (high - low)
        self.params[name] = value
        return value


def log_between(u: float, low: float, high: float) -> float:
    return math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
