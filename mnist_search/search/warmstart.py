"""The nets already found, shipped in ``mnist_search/catalog/found/``: fit them to a budget and queue them
as a search's first trials, so a search never starts below the best net already known.

Each is queued as an ordinary trial of the space (its parameters, not a fixed spec), so the
sampler learns from it and it may become the search's chosen net like any other candidate; a
space that cannot resize a known net (``Space.fit_widths``) starts from its sampler alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import optuna

from mnist_search.catalog.experiments import (
    DOCUMENTED_PROTOCOL,
    PROTOCOL_NAME,
    Experiment,
    documented_experiments,
)
from mnist_search.errors import UsageError
from mnist_search.files import read_json
from mnist_search.net.spec import ArchSpec, SpecError, count_params
from mnist_search.search import records
from mnist_search.search.records import TrialRecord
from mnist_search.search.storage import claim_once
from mnist_search.spaces import get_space
from mnist_search.spaces.plain import spec_params, training_params

WARM_NETS = 2  # shipped nets queued per search: those found at the budgets nearest this one


@dataclass(frozen=True)
class KnownNet:
    name: str  # where it came from, e.g. "found/budget-25000.json"
    budget: int
    spec: ArchSpec
    training: dict[str, Any]
    val_mean: float  # its validation accuracy when it was found (mean over its seeds)
    epochs: int = 0  # the length it was found at (0: not recorded)
    dataset: str = "mnist"  # the data it was found on


def known_nets(folder: Path | None = None) -> list[KnownNet]:
    """The shipped nets of ``mnist_search/catalog/found/`` (or of a folder laid out like it: the
    set changes whenever a frontier run is shipped, so the warm start's own tests bring theirs)."""
    where = resources.files("mnist_search.catalog").joinpath("found") if folder is None else folder
    return [
        _known(f"found/{f.name}", f.read_text())
        for f in sorted(where.iterdir(), key=lambda f: f.name)
        if f.name.endswith(".json")
    ]


def nets_in(folders: tuple[str, ...] | list[str]) -> list[KnownNet]:
    """The ``budget-<B>.json`` spec files in ``folders`` (a frontier's results so far); a file
    that does not read as one is skipped (the run that writes it will say why)."""
    out = []
    for folder in map(Path, folders):
        for f in sorted(folder.glob("budget-*.json")) if folder.is_dir() else []:
            try:
                out.append(_known(str(f), read_json(f)))
            except (UsageError, KeyError, TypeError, ValueError, AttributeError):
                continue
    return out


def _known(name: str, body: str | dict[str, Any]) -> KnownNet:
    d = json.loads(body) if isinstance(body, str) else body
    return KnownNet(
        name,
        int(d["budget"]),
        ArchSpec.from_dict(d["spec"]),
        d["training"],
        float(d["result"]["val_mean"]),
        int(d.get("epochs") or 0),
        str((d.get("protocol") or {}).get("dataset", "mnist")),
    )


def _family(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if not k.startswith("width")}


def warm_start_known(
    study: optuna.Study,
    budget: int,
    space: str,
    nets: list[KnownNet],
    count: int = WARM_NETS,
    length: int | None = None,
) -> list[str]:
    """Queue the ``count`` of ``nets`` found at the budgets nearest ``budget`` (among equally
    near ones, those found at the final training ``length`` when it is fixed, then the better on
    validation), widths fitted to it.
    Returns one message per net: queued, already in the study, or why not."""
    sp = get_space(space)
    fit, make = sp.fit_widths, sp.build
    if fit is None or make is None:
        return [
            f"warm start: the {space} space cannot fit a known net to a budget; it starts "
            "from the sampler alone"
        ]
    present = {TrialRecord.of(t).warm_start for t in study.get_trials(deepcopy=False)}
    # Nearest budget first; among nets found at the same budget, those whose recipe was tuned
    # for the length the chosen net will train (a one-epoch net's batch size is not a 15-epoch
    # net's), then the best on validation (accuracies of different lengths do not compare).
    nets = sorted(
        nets,
        key=lambda n: (
            abs(math.log(n.budget / budget)),
            length is not None and n.epochs != length,
            -n.val_mean,
            n.name,
        ),
    )
    messages: list[str] = []
    queued: list[dict[str, Any]] = []
    for net in nets:
        if len(queued) + sum(m.endswith("already in the study") for m in messages) >= count:
            break
        label = net.name
        if label in present:
            messages.append(f"warm start: {label} is already in the study")
            continue
        # The spaces' nets have 10 outputs; the objective gives a net the data's own count.
        try:
            own = sp.spec_params(dataclasses.replace(net.spec, num_classes=10))
        except SpecError:
            messages.append(f"warm start: {label} is not a net of the {space} space")
            continue
        params = fit(own, budget)
        if params is None:
            messages.append(f"warm start: {label} does not fit {budget:,} parameters at any width")
            continue
        params.update(sp.training_params(net.training))
        if _family(params) in map(_family, queued):  # found again at another budget
            messages.append(
                f"warm start: {label} is the same net and recipe, in other widths, "
                "as one already queued"
            )
            continue
        queued.append(params)
        study.enqueue_trial(
            params,
            user_attrs=records.queued(warm_start=label, warm_from_params=count_params(net.spec)),
        )
        n = count_params(make(params))
        messages.append(
            f"warm start: {label} queued ({n:,} parameters"
            + (
                f", widths fitted from {count_params(net.spec):,})"
                if n != count_params(net.spec)
                else ")"
            )
        )
    return messages


def documented_params(exp: Experiment) -> dict[str, Any]:
    """The fixed trial parameters of one experiment under the documented protocol."""
    hp = {**DOCUMENTED_PROTOCOL, "batch_size": exp.batch_size}
    return spec_params(exp.spec) | training_params(hp)


def documented_attrs(exp: Experiment, seed: int) -> dict[str, Any]:
    d = exp.documented
    return records.queued(
        experiment=exp.id,
        experiment_title=exp.title,
        protocol=PROTOCOL_NAME,
        seed=seed,
        documented_params=d.get("params"),
        documented_params_text=d.get("params_text"),
        documented_train_accuracy=d.get("train_accuracy"),
        documented_test_accuracy=d.get("test_accuracy"),
    )


def warm_start_documented(study: optuna.Study, budget: int, space: str = "plain") -> list[str]:
    """Queue the documented architectures that fit ``budget`` as a search's first trials.

    They are points of the plain space; in another space they are queued as fixed specs.

    Returns one message per experiment: queued, already in the study, or over the budget.
    """
    messages = []
    present = {TrialRecord.of(t).experiment for t in study.get_trials(deepcopy=False)}
    for exp in documented_experiments():
        if exp.true_params > budget:
            messages.append(
                f"warm start: Exp{exp.id} skipped, {exp.true_params:,} parameters "
                f"are over the budget of {budget:,}"
            )
        elif exp.id in present:
            messages.append(f"warm start: Exp{exp.id} is already in the study")
        else:
            attrs = documented_attrs(exp, 0)
            hp = {**DOCUMENTED_PROTOCOL, "batch_size": exp.batch_size}
            params = get_space(space).params_of(exp.spec, hp)
            if params is not None:  # a point of the space: an ordinary trial the sampler sees
                study.enqueue_trial(params, user_attrs=attrs)
            else:
                study.enqueue_trial(
                    {},
                    user_attrs={
                        **attrs,
                        **records.queued(fixed_spec=exp.spec.to_dict(), fixed_training=hp),
                    },
                )
            messages.append(
                f"warm start: Exp{exp.id} queued ({exp.true_params:,} parameters, "
                f"batch {exp.batch_size})"
            )
    return messages


WARM_STARTS = ("found", "documented", "none")


def warm_start(
    source: str,
    study: optuna.Study,
    budget: int,
    space: str,
    dirs: tuple[str, ...] = (),
    length: int | None = None,
    dataset: str = "mnist",
) -> list[str]:
    """Queue a search's first trials from ``source``: ``found`` (the shipped nets, fitted to the
    budget), ``documented`` (the write-up's nets that fit) or ``none``; and, from ``dirs``, the
    net found at the nearest smaller budget, widened. ``length``: the final stage's epochs when
    fixed. Processes that start on a new study together queue them once: whoever claims the
    study first. Only nets found on ``dataset`` are queued: the shipped nets and the write-up's
    are MNIST's. Returns one message per net."""
    messages = []
    shipped = [n for n in known_nets() if n.dataset == dataset] if source == "found" else []
    if source == "documented" and dataset != "mnist":
        messages.append(
            f"warm start: the write-up's nets are MNIST's, not {dataset}'s: none queued"
        )
    elif source == "found" and not shipped:
        messages.append(
            f"warm start: none of the shipped nets was found on {dataset} (they are MNIST's): "
            "none queued; the search starts from its own draws"
        )
    elif source != "none":
        if not claim_once(study, f"warm_start:{source}"):
            messages.append(f"warm start: another process queued the {source} nets of this study")
        elif source == "documented":
            messages += warm_start_documented(study, budget, space)
        else:
            messages += warm_start_known(study, budget, space, shipped, length=length)
    found = nets_in(dirs)
    for net in found:
        if net.dataset != dataset:
            messages.append(f"warm start: {net.name} was found on {net.dataset}, not {dataset}")
    smaller = [n for n in found if n.budget < budget and n.dataset == dataset]
    if smaller and claim_once(study, "warm_start:smaller budgets"):
        messages += warm_start_known(study, budget, space, smaller, count=1)
    return messages


STARTUP = 8  # start-up design points queued by default: about a minute of a 25,000 search


def queue_startup(study: optuna.Study, budget: int, space: str, n: int, seed: int) -> list[str]:
    """Queue the space's space-filling start-up design (``n`` points, fixed by ``seed``) as the
    search's first sampled trials, once per study. Returns one message."""
    design = get_space(space).startup
    if n == 0:
        return []
    if design is None:
        return [f"start-up design: the {space} space has none; the sampler starts at random"]
    if not claim_once(study, "startup"):
        return ["start-up design: already queued on this study"]
    for k, params in enumerate(design(budget, n, seed)):
        study.enqueue_trial(params, user_attrs=records.queued(design=k))
    return [f"start-up design: {n} space-filling nets queued, trained with the recipe prior"]
