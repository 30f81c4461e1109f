"""What one search is asked to do: one frozen config, checked whole before any work, with every
default filled in by ``resolved``. The command line, the workers (which get it serialized on
their standard input) and the Python API build the same object."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_search.errors import ConfigError, check_range, check_seed
from mnist_search.net.spec import describe
from mnist_search.search import storage
from mnist_search.search.final_time import MAX_AUTO_EPOCHS
from mnist_search.search.study import PRUNERS
from mnist_search.search.warmstart import STARTUP, WARM_STARTS
from mnist_search.spaces import SPACES, get_space
from mnist_search.training.loop import Speed
from mnist_search.training.protocol import MAX_EPOCHS, Protocol

DEFAULT_TIMEOUT = 900.0  # seconds, when neither a trial count nor a time limit is given
AUTO = "auto"
# With an automatic final length, the search gets this share of the time limit and the final
# stage the rest: one short trial tells too little about a net to spend more of it searching.
SEARCH_SHARE = 0.4


@dataclass(frozen=True)
class SearchConfig:
    """Everything one search needs. Paths may be ``str`` or ``Path``; None means the default."""

    budget: int = 25000  # hard cap on trainable parameters
    space: str = "modern"
    # The protocol: how each candidate is trained and judged.
    epochs: int = 1
    train_subset: int | None = None
    val_size: int = 5000
    # Stopping: after n_trials (per process), or timeout seconds (default 900 without n_trials).
    n_trials: int | None = None
    timeout: float | None = None
    study_name: str | None = None  # default budget-<budget>; the same name resumes
    storage: str | None = None  # default sqlite:///studies/mnist-search.db (all studies)
    seed: int | None = None  # None: drawn at random (and recorded in the outcome's config)
    device: str = "auto"
    data_dir: str | Path | None = None
    pruner: str = "rungs"
    # First trials: "found" (shipped nets fitted to the budget), "documented" or "none".
    warm_start: str = "found"
    # Space-filling first sampled trials, trained with the recipe prior (0: the sampler's own).
    startup: int = STARTUP
    workers: int = 1
    heartbeat: int = 10
    parallel: int = 1
    amp: bool | None = None
    channels_last: bool | None = None
    compile: bool = False
    artifacts: str | Path | None = None
    # The final stage: retrain the top candidates with several seeds (0: none).
    final_seeds: int = 1
    # "auto": as many as the time left allows (with a timeout; else epochs); None: epochs.
    final_epochs: int | str | None = "auto"
    final_top: int = 2
    # The longest an automatic final length may be (the frontier sets one per budget).
    final_max_epochs: int = MAX_AUTO_EPOCHS
    # Folders of spec files (the format of mnist_search/found/) whose nets found at smaller
    # budgets are also queued, widened, as first trials (the frontier's own results).
    warm_dirs: tuple[str, ...] = ()
    best_spec: str | Path | None = None  # default studies/<study_name>-best.json

    @property
    def protocol(self) -> Protocol:
        return Protocol(epochs=self.epochs, train_subset=self.train_subset, val_size=self.val_size)

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
        return bool(self.final_seeds) and self.final_epochs == AUTO and self.timeout is not None

    @property
    def final_protocol(self) -> Protocol:
        """The final stage's protocol; with an automatic length, its --epochs until the search
        has measured its finalists (``final_length``)."""
        fixed = self.final_epochs if isinstance(self.final_epochs, int) else None
        return dataclasses.replace(self.protocol, epochs=fixed or self.epochs)

    @property
    def speed(self) -> Speed:
        return Speed(self.amp, self.channels_last, None, self.compile)

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
        if self.final_epochs not in (None, AUTO) and (
            isinstance(self.final_epochs, bool)
            or not isinstance(self.final_epochs, int)
            or not 1 <= self.final_epochs <= MAX_EPOCHS
        ):
            raise ConfigError(
                "final_epochs",
                f"{self.final_epochs!r}: must be 'auto' or a "
                f"number of epochs from 1 to {MAX_EPOCHS}",
            )
        self.protocol  # noqa: B018 -- a Protocol checks epochs, val_size and train_subset
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
        for name in ("workers", "heartbeat", "parallel", "final_top", "final_seeds", "startup"):
            check_range(name, getattr(self, name))
        check_range("final_max_epochs", self.final_max_epochs, 1, MAX_EPOCHS)
        if self.compile and self.parallel > 1:
            raise ConfigError(
                "compile",
                "True with parallel={}: fused training of several "
                "candidates does not compile; drop one of the two".format(self.parallel),
            )
        check_seed("seed", self.seed)
        if self.study_name is not None:
            storage.check_study_name(self.study_name)

    def resolved(self) -> Resolved:
        """The config with every default filled in (the seed drawn once, here)."""
        if isinstance(self, Resolved):
            return self
        name = self.study_name or f"budget-{self.budget}"
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
        return json.dumps(
            {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()}
        )


@dataclass(frozen=True)
class Resolved(SearchConfig):
    """A ``SearchConfig`` with its defaults filled in: what the engine and the workers run."""

    study_name: str = ""
    storage: str = ""
    seed: int = 0
    best_spec: str = ""
