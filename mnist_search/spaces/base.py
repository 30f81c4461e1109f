"""What a search space is, and the helpers every space uses to stay feasible by construction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import optuna

from mnist_search.net.spec import ArchSpec, SpecError


@dataclass(frozen=True)
class Space:
    """One search space: a trial's choices → (spec under a budget, training settings).

    ``free`` names the trial parameters that may differ between the members of one fused group
    (they change the training, not the shapes); everything else a group shares.
    """

    name: str
    version: str
    suggest_spec: Callable[[optuna.Trial, int], ArchSpec]
    suggest_training: Callable[[optuna.Trial], dict[str, Any]]
    smallest_net: Callable[[], ArchSpec]
    # The inverses: the trial parameters that make a spec / training settings (SpecError when
    # the spec is not a point of this space).
    spec_params: Callable[[ArchSpec], dict[str, Any]]
    training_params: Callable[[dict[str, Any]], dict[str, Any]]
    # (budget, n, seed) → n trial parameter sets to start a search from (spaces/design.py);
    # None: the sampler's own start-up draws.
    startup: Callable[[int, int, int], list[dict[str, Any]]] | None = None
    free: tuple[str, ...] = ()
    # (trial parameters, budget) → the same net with its widths scaled to fit the budget, or None
    # when no width fits; None: the space cannot resize a known net (no warm start from them).
    fit_widths: Callable[[dict[str, Any], int], dict[str, Any] | None] | None = None
    # Trial parameters → the net they make (the inverse of ``spec_params``).
    build: Callable[[dict[str, Any]], ArchSpec] | None = None

    def params_of(self, spec: ArchSpec, training: dict[str, Any]) -> dict[str, Any] | None:
        """The trial parameters that make this net with these settings, or None when it is not
        a point of this space (it can still be queued as a fixed net)."""
        try:
            return self.spec_params(spec) | self.training_params(training)
        except (SpecError, KeyError, ValueError):
            return None

    def smallest_params(self) -> int:
        from mnist_search.net.spec import count_params

        return count_params(self.smallest_net())


def largest(lo: int, hi: int, fits: Callable[[int], bool]) -> int:
    """Largest w in [lo, hi] with fits(w), given fits is monotone (true, then false)."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def pick(trial: optuna.Trial, name: str, choices: tuple, ok: Callable[[Any], bool]) -> Any:
    """Ask for a categorical only while more than one of its options is feasible."""
    feasible = [c for c in choices if ok(c)]
    if not feasible:
        raise SpecError(f"no feasible value for {name}")
    return trial.suggest_categorical(name, choices) if len(feasible) > 1 else feasible[0]
