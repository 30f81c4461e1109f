"""The one kind of error a user can fix: bad input, or a resource that cannot be used as asked.

Every such error is a ``UsageError``; the command line shows it as one line with exit status 2.
"""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input or an unusable resource, said in one line that names the value."""


class ConfigError(UsageError):
    """A bad setting of a search, run or replay, named by its option.

    ``str()`` names it as a Python field (``budget 0: ...``); the command line names it as a
    flag (``--budget 0: ...``) through ``as_flag``.
    """

    def __init__(self, option: str, rest: str):
        super().__init__(f"{option} {rest}")
        self.option, self.rest = option, rest

    def as_flag(self) -> str:
        return f"--{self.option.replace('_', '-')} {self.rest}"


# The allowed range of each count setting, stated once for every command that takes it:
# (lowest, highest, unit). A typo such as --workers 1000 must not start a thousand processes.
RANGES: dict[str, tuple[int, int, str]] = {
    "seeds": (1, 1000, ""),  # runs of one net: train --seeds, replay --seeds
    "parallel": (1, 256, ""),  # candidates trained as one fused net
    "workers": (1, 64, ""),
    "heartbeat": (1, 3600, " second"),
    "final_top": (1, 100, ""),
    "final_seeds": (0, 100, ""),
    "startup": (0, 1000, ""),
    "top": (0, 1000, ""),  # rows of a table
}


def check_range(option: str, value: int, low: int | None = None, high: int | None = None) -> None:
    """``value`` within ``RANGES[option]`` (or the ``low``/``high`` given)."""
    lo, hi, unit = RANGES.get(option, (low, high, ""))
    lo, hi = lo if low is None else low, hi if high is None else high
    if lo is not None and value < lo:
        raise ConfigError(option, f"{value}: must be at least {lo}{unit}")
    if hi is not None and value > hi:
        raise ConfigError(option, f"{value}: must be at most {hi}")


SEEDS = 2**32  # seeds are 0 … 2**32 - 1, what every random generator here accepts


def check_seed(option: str, seed: int | None, count: int = 1) -> None:
    """Seeds ``seed`` … ``seed + count - 1`` must all be valid seeds."""
    if seed is not None and not 0 <= seed <= SEEDS - count:
        raise ConfigError(option, f"{seed}: must be between 0 and {SEEDS - count:,}")
