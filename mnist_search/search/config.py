"""What one search is asked to do: one frozen config, checked whole before any work, with every
default filled in by ``resolved``. The command line, the workers (which get it serialized on
their standard input) and the Python API build the same object.

It is made of parts that check themselves and that other commands reuse: the protocol (how each
candidate is trained and judged; ``replay`` and ``train`` take one too), the run settings (device,
data, speed, fused group size; the same part for every command) and the final stage."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_search.data.augment import STRENGTHS
from mnist_search.errors import ConfigError, check_range, check_seed
from mnist_search.net.spec import describe
from mnist_search.search import storage
from mnist_search.search.final_time import MAX_AUTO_EPOCHS
from mnist_search.search.study import PRUNERS
from mnist_search.search.warmstart import STARTUP, WARM_STARTS
from mnist_search.spaces import SPACES, get_space
from mnist_search.training.loop import Speed
from mnist_search.training.protocol import MAX_EPOCHS, Protocol
from mnist_search.training.settings import RunSettings

DEFAULT_TIMEOUT = 900.0  # seconds, when neither a trial count nor a time limit is given
AUTO = "auto"
OWN = "own"  # final-stage augmentation: each finalist's own recipe's
# With an automatic final length, the search gets this share of the time limit and the final
# stage the rest: one short trial tells too little about a net to spend more of it searching.
SEARCH_SHARE = 0.4


def default_study_name(budget: int, dataset: str) -> str:
    """``budget-<B>`` on MNIST, ``<dataset>-budget-<B>`` on another (an own folder: ``idx``),
    so searches on different data never meet in one study by default."""
    kind = dataset.split(":")[0]
    return f"budget-{budget}" if kind == "mnist" else f"{kind}-budget-{budget}"


@dataclass(frozen=True, kw_only=True)
class FinalSettings:
    """The final stage: retrain the search's top candidates from scratch with several seeds and
    choose on validation."""

    seeds: int = 1  # 0: no final stage
    # "auto": as many as the time left allows (with a timeout; else the protocol's epochs);
    # None: the protocol's epochs.
    epochs: int | str | None = AUTO
    top: int = 2
    # The longest an automatic length may be (the frontier sets one per budget).
    max_epochs: int = MAX_AUTO_EPOCHS
    # Retrain every finalist with this augmentation instead of its own recipe's ("own"): a short
    # search trial says little of what augmentation does over a long training, and the shipped
    # nets' recipes have none.
    augment: str = OWN
    # Also retrain the search's best warm-start net (a shipped net or the net chosen at a smaller
    # budget, fitted to this one) whether or not it is among the finalists: one epoch is a weak
    # ranking (a 24,849-parameter shipped net ranked fifth there, and first at full length).
    incumbent: bool = False
    # A spec file of a net every retraining also learns from (knowledge distillation, at the
    # training module's default weight and temperature): trained once at the stage's start, on
    # the same data, its time counted in the run's; None: labels alone.
    teacher: str | None = None

    def check(self) -> None:
        if self.teacher is not None:  # read now, not after the search: a bad file stops us here
            from mnist_search.training.retrain import SpecFile, recipe_config

            try:
                recipe_config(SpecFile.read(self.teacher, "final_teacher"), None, None)
            except ConfigError as e:
                raise ConfigError("final_teacher", f"{self.teacher}: {e.rest}") from None
        if self.epochs not in (None, AUTO) and (
            isinstance(self.epochs, bool)
            or not isinstance(self.epochs, int)
            or not 1 <= self.epochs <= MAX_EPOCHS
        ):
            raise ConfigError(
                "final_epochs",
                f"{self.epochs!r}: must be 'auto' or a number of epochs from 1 to {MAX_EPOCHS}",
            )
        check_range("final_top", self.top)
        check_range("final_seeds", self.seeds)
        check_range("final_max_epochs", self.max_epochs, 1, MAX_EPOCHS)
        if self.augment != OWN and self.augment not in STRENGTHS:
            raise ConfigError(
                "final_augment",
                f"{self.augment!r}; valid: {OWN} (each finalist's own), {', '.join(STRENGTHS)}",
            )

    @property
    def augment_override(self) -> str | None:
        """The augmentation that replaces each finalist's own; None: none replaces it."""
        return None if self.augment == OWN else self.augment


@dataclass(frozen=True, kw_only=True)
class SearchConfig:
    """Everything one search needs. Paths may be ``str`` or ``Path``; None means the default."""

    budget: int = 25000  # hard cap on trainable parameters
    space: str = "modern"
    protocol: Protocol = Protocol()  # how each candidate is trained and judged
    # Stopping: after n_trials (per process), or timeout seconds (default 900 without n_trials).
    n_trials: int | None = None
    timeout: float | None = None
    study_name: str | None = None  # default budget-<budget>; the same name resumes
    storage: str | None = None  # default sqlite:///studies/mnist-search.db (all studies)
    seed: int | None = None  # None: drawn at random (and recorded in the outcome's config)
    pruner: str = "rungs"
    # First trials: "found" (shipped nets fitted to the budget), "documented" or "none".
    warm_start: str = "found"
    # Space-filling first sampled trials, trained with the recipe prior (0: the sampler's own).
    startup: int = STARTUP
    workers: int = 1
    heartbeat: int = 10
    run: RunSettings = RunSettings()  # device, data, speed, fused group size
    artifacts: str | Path | None = None
    final: FinalSettings = FinalSettings()
    # Folders of spec files (the format of mnist_search/catalog/found/) whose nets found at smaller
    # budgets are also queued, widened, as first trials (the frontier's own results).
    warm_dirs: tuple[str, ...] = ()
    best_spec: str | Path | None = None  # default studies/<study_name>-best.json

    def spec_meta(self) -> dict[str, Any]:
        """What a spec file written from this search records of it: the budget, space, study,
        storage (password masked) and data split a retraining needs."""
        return {
            "budget": self.budget,
            "space": self.space,
            "study": self.study_name,
            "storage": storage.masked(self.storage or storage.default_storage()),
            "protocol": self.protocol.data_split(),
        }

    @property
    def auto_final(self) -> bool:
        """The final length is set by the time the search leaves (``final_epochs="auto"``)."""
        return bool(self.final.seeds) and self.final.epochs == AUTO and self.timeout is not None

    @property
    def final_protocol(self) -> Protocol:
        """The final stage's protocol; with an automatic length, its --epochs until the search
        has measured its finalists (``final_length``)."""
        fixed = self.final.epochs if isinstance(self.final.epochs, int) else None
        return dataclasses.replace(self.protocol, epochs=fixed or self.protocol.epochs)

    @property
    def speed(self) -> Speed:
        return self.run.speed

    def check(self) -> None:
        """Raise ConfigError for the first bad setting; touches nothing."""
        if self.space not in SPACES:
            raise ConfigError("space", f"{self.space!r}; valid: {', '.join(SPACES)}")
        sp = get_space(self.space)
        if self.budget <= 0:
            raise ConfigError("budget", f"{self.budget}: must be a positive number of parameters")
        if self.budget < sp.smallest_params():
            raise ConfigError(
                "budget",
                f"{self.budget:,} is below the smallest net in the "
                f"{self.space} search space ({sp.smallest_params():,} parameters: "
                f"{describe(sp.smallest_net())})",
            )
        self.final.check()
        if self.n_trials is not None and self.n_trials < 1:
            raise ConfigError("n_trials", f"{self.n_trials}: must be at least 1")
        if self.timeout is not None and not 0 < self.timeout < math.inf:
            raise ConfigError(
                "timeout", f"{self.timeout}: must be a positive, finite number of seconds"
            )
        if self.pruner not in PRUNERS:
            raise ConfigError("pruner", f"{self.pruner!r}; valid: {', '.join(PRUNERS)}")
        if self.warm_start not in WARM_STARTS:
            raise ConfigError("warm_start", f"{self.warm_start!r}; valid: {', '.join(WARM_STARTS)}")
        for name in ("workers", "heartbeat", "startup"):
            check_range(name, getattr(self, name))
        self.run.check()
        check_seed("seed", self.seed)
        if self.study_name is not None:
            storage.check_study_name(self.study_name)

    def resolved(self) -> Resolved:
        """The config with every default filled in (the seed drawn once, here)."""
        if isinstance(self, Resolved):
            return self
        name = self.study_name or default_study_name(self.budget, self.protocol.dataset)
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return Resolved(
            **fields
            | dict(
                study_name=name,
                storage=self.storage or storage.default_storage(),
                seed=self.seed if self.seed is not None else random.SystemRandom().randrange(2**31),
                timeout=(
                    DEFAULT_TIMEOUT
                    if self.timeout is None and self.n_trials is None
                    else self.timeout
                ),
                best_spec=str(self.best_spec or storage.STUDIES / f"{name}-best.json"),
            )
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), default=str)  # paths as strings


@dataclass(frozen=True, kw_only=True)
class Resolved(SearchConfig):
    """A ``SearchConfig`` with its defaults filled in: what the engine and the workers run."""

    study_name: str = ""
    storage: str = ""
    seed: int = 0
    best_spec: str = ""

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Resolved:
        """The config ``to_json`` wrote (a worker's job)."""
        parts = {
            "protocol": Protocol.from_dict(d["protocol"]),
            "run": RunSettings(**d["run"]),
            "final": FinalSettings(**d["final"]),
            "warm_dirs": tuple(d["warm_dirs"]),
        }
        return cls(**d | parts)
