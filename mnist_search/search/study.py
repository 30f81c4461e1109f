"""A study of this tool: created once with its budget, search space and protocol stored, or
loaded after checking it was made for the same search; and its pruner."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from mnist_search.errors import UsageError
from mnist_search.search.pruning import RungPruner
from mnist_search.spaces import SPACES, get_space
from mnist_search.training.protocol import Protocol

PRUNERS = ("rungs", "median", "hyperband", "sha", "none")


class StudyError(UsageError):
    """A study that cannot be used as asked."""


@dataclass(frozen=True)
class StudyAttrs:
    """What a study of this tool was made for, stored on it once, when it is created."""

    budget: int | None  # None: no cap (a study of fixed trials)
    space_version: str
    protocol: Protocol

    KEYS: ClassVar[tuple[str, ...]] = ("budget", "space_version", "protocol")

    def stored(self) -> dict[str, Any]:
        """As the study's user attributes hold them (JSON values)."""
        return {
            "budget": self.budget,
            "space_version": self.space_version,
            "protocol": self.protocol.to_dict(),
        }

    @classmethod
    def of(cls, study: optuna.Study) -> StudyAttrs:
        """A study's attributes; an attribute it lacks reads as its default."""
        a = study.user_attrs
        return cls(
            a.get("budget"), a.get("space_version", ""), Protocol.from_dict(a.get("protocol"))
        )


class TrialSeededTPE(optuna.samplers.TPESampler):
    """TPE whose random draws for each trial derive from (seed, trial number).

    A one-process study with a given seed repeats itself trial for trial, while a resumed run,
    a second process or a worker on the same study never replays another trial's draws: no two
    trials share a number.
    """

    def __init__(self, seed: int | None, n_startup_trials: int = 10):
        super().__init__(seed=seed, n_startup_trials=n_startup_trials)
        self._base_seed = seed

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self._base_seed is not None:
            s = int(np.random.SeedSequence([self._base_seed, trial.number]).generate_state(1)[0])
            self._rng.rng.seed(s)
            self._random_sampler._rng.rng.seed(s)
        super().before_trial(study, trial)


def make_pruner(name: str, protocol: Protocol) -> optuna.pruners.BasePruner:
    if name == "rungs":
        return RungPruner(protocol.reports, protocol.epochs * protocol.reports)
    if name == "median":
        # Compare each trial with the median of earlier ones at the same report step; wait for 5
        # trials and skip the first quarter epoch, where most nets are still far from their end.
        return optuna.pruners.MedianPruner(
            n_startup_trials=5, n_warmup_steps=max(1, protocol.reports // 4)
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=protocol.epochs * protocol.reports, reduction_factor=3
        )
    if name == "sha":
        # Successive halving over training length: a trial goes on past each rung (report
        # steps R, 3R, 9R... with R one epoch's reports) only while in the best third there.
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=protocol.reports, reduction_factor=3
        )
    if name == "none":
        return optuna.pruners.NopPruner()
    raise StudyError(f"pruner {name!r}; valid: {', '.join(PRUNERS)}")


def open_study(
    storage: optuna.storages.BaseStorage,
    study_name: str,
    budget: int | None,
    protocol: Protocol,
    *,
    seed: int | None = None,
    pruner: str = "rungs",
    space: str = "modern",
    startup: int = 0,
) -> optuna.Study:
    """Create the study, or load it after checking it was made for the same search.

    ``budget`` None means no cap (a study of fixed trials, such as the documented experiments).
    ``startup`` is the size of the search's start-up design (0: none).
    """
    wanted = StudyAttrs(budget, get_space(space).version, protocol).stored()
    kwargs: dict[str, Any] = {
        "study_name": study_name,
        "storage": storage,
        # A start-up design is the sampler's start: TPE models the trials from the first
        # one after it (else Optuna's 10 random draws).
        "sampler": TrialSeededTPE(seed, n_startup_trials=startup or 10),
        "pruner": make_pruner(pruner, protocol),
    }
    try:
        storage.get_study_id_from_name(study_name)
    except KeyError:
        try:
            study = optuna.create_study(direction="maximize", **kwargs)
        except optuna.exceptions.DuplicatedStudyError:
            pass  # another process made it a moment ago: check it like any existing study
        else:
            with warnings.catch_warnings():  # experimental in Optuna, and only a label
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(["validation accuracy (%)"])  # the dashboard's label
            for key, value in wanted.items():
                study.set_user_attr(key, value)
            return study
    study = optuna.load_study(**kwargs)
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise StudyError(
            f"study {study_name!r} exists with direction "
            f"{study.direction.name}; this tool needs MAXIMIZE (use another "
            "--study-name)"
        )
    stored = _attrs_once_made(study, StudyAttrs.KEYS)
    # As this version writes them: a protocol stored before a field existed has its default.
    stored = stored | {"protocol": Protocol.from_dict(stored["protocol"]).to_dict()}
    for key, value in wanted.items():
        if stored[key] != value:
            have, want = _in_flags(key, stored[key]), _in_flags(key, value)
            them = "those" if have.count("--") > 1 else "that"
            raise StudyError(
                f"study {study_name!r} exists with {have}, not {want}; use {them} "
                "or another --study-name"
            )
    return study


def _in_flags(key: str, value) -> str:
    """A stored study attribute as the options that give it."""
    if key == "budget":
        return "no budget" if value is None else f"--budget {value}"
    if key == "protocol":
        return Protocol.from_dict(value).flags()
    names = {s.version: name for name, s in SPACES.items()}
    return f"--space {names[value]}" if value in names else f"search space version {value}"


def _attrs_once_made(study: optuna.Study, keys: tuple[str, ...], wait: float = 10.0) -> dict:
    """The study's attributes, once the process that is creating it has written them all. A
    study that never gets them was made by another tool and is refused, not adopted."""
    end = time.time() + wait
    while True:
        stored = study.user_attrs
        if all(k in stored for k in keys):
            return stored
        if study.get_trials(deepcopy=False) or time.time() > end:
            raise StudyError(
                f"study {study.study_name!r} exists but was not made by "
                "mnist-search (it records no budget, space or protocol); use "
                "another --study-name"
            )
        time.sleep(0.2)
