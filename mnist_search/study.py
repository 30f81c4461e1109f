"""A study of this tool: created once with its budget, search space and protocol stored, or
loaded after checking it was made for the same search; and its pruner."""

from __future__ import annotations

import optuna

from .errors import UsageError
from .protocol import Protocol
from .spaces import get_space

PRUNERS = ("median", "hyperband", "none")


class StudyError(UsageError):
    """A study that cannot be used as asked."""


def make_pruner(name: str, protocol: Protocol) -> optuna.pruners.BasePruner:
    if name == "median":
        # Compare each trial with the median of earlier ones at the same report step; wait for 5
        # trials and skip the first report, where every net is still near chance.
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=protocol.epochs * protocol.reports, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise StudyError(f"pruner {name!r}; valid: {', '.join(PRUNERS)}")


def open_study(storage: optuna.storages.BaseStorage, study_name: str, budget: int | None,
               protocol: Protocol, *, seed: int | None = None,
               pruner: str = "median", space: str = "modern") -> optuna.Study:
    """Create the study, or load it after checking it was made for the same search.

    ``budget`` None means no cap (a study of fixed trials, such as the documented experiments).
    """
    wanted = {"budget": budget, "space_version": get_space(space).version,
              "protocol": protocol.to_dict()}
    sampler = optuna.samplers.TPESampler(seed=seed)
    try:
        storage.get_study_id_from_name(study_name)
        exists = True
    except KeyError:
        exists = False
    if exists:
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler,
                                  pruner=make_pruner(pruner, protocol))
        if study.direction != optuna.study.StudyDirection.MAXIMIZE:
            raise StudyError(f"study {study_name!r} exists with direction "
                             f"{study.direction.name}; this tool needs MAXIMIZE (use another "
                             "--study-name)")
        stored = study.user_attrs
        for key, value in wanted.items():
            if key in stored and stored[key] != value:
                raise StudyError(f"study {study_name!r} exists with {key}={stored[key]}, not "
                                 f"{value}; use that {key} or another --study-name")
        return study
    study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize",
                                sampler=sampler, pruner=make_pruner(pruner, protocol))
    for key, value in wanted.items():
        study.set_user_attr(key, value)
    return study
