"""The nets already found, shipped in ``mnist_search/found/``: fit them to a budget and queue them
as a search's first trials, so a search never starts below the best net already known.

Each is queued as an ordinary trial of the modern space (its parameters, not a fixed spec), so the
sampler learns from it and it may become the search's chosen net like any other candidate.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

import optuna

from mnist_search.net.spec import ArchSpec, SpecError, count_params
from mnist_search.search import records
from mnist_search.search.records import TrialRecord
from mnist_search.search.storage import claim_once
from mnist_search.spaces import modern

WARM_NETS = 2  # shipped nets queued per search: those found at the budgets nearest this one


@dataclass(frozen=True)
class KnownNet:
    name: str  # the file's stem, e.g. "budget-25000"
    budget: int
    spec: ArchSpec
    training: dict[str, Any]
    val_mean: float  # its validation accuracy when it was found (mean over its seeds)


def known_nets() -> list[KnownNet]:
    out = []
    for f in sorted(
        resources.files("mnist_search").joinpath("found").iterdir(), key=lambda f: f.name
    ):
        if f.name.endswith(".json"):
            d = json.loads(f.read_text())
            out.append(
                KnownNet(
                    f.name[:-5],
                    int(d["budget"]),
                    ArchSpec.from_dict(d["spec"]),
                    d["training"],
                    float(d["result"]["val_mean"]),
                )
            )
    return out


def fit_widths(params: dict[str, Any], budget: int) -> dict[str, Any] | None:
    """``params`` (a modern-space net) with every stage's width scaled by one factor, the largest
    that fits ``budget``; None when not even the narrowest widths fit."""
    stages = params["stages"]
    base = [params[f"width{s}"] for s in range(1, stages + 1)]
    lo_w, hi_w = modern.WIDTH

    def scaled(a: float) -> dict[str, Any]:
        p = dict(params)
        for s, w in enumerate(base, start=1):
            p[f"width{s}"] = min(hi_w, max(lo_w, round(a * w)))
        return p

    def fits(p: dict[str, Any]) -> bool:
        try:
            return count_params(build(p)) <= budget
        except SpecError:
            return False

    lo, hi = 0.0, float(hi_w)  # widths are clipped, so no factor beyond hi_w changes anything
    if not fits(scaled(lo)):
        return None
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(scaled(mid)) else (lo, mid)
    return scaled(lo)


def build(p: dict[str, Any]) -> ArchSpec:
    stages = p["stages"]
    return modern.build_spec(
        stages,
        p["padding"],
        [p[f"blocks{s}"] for s in range(1, stages + 1)],
        [p[f"width{s}"] for s in range(1, stages + 1)],
        separable=p["separable"],
        residual=p["residual"],
        transition=p["transition"],
        head=p["head"],
        dropout=p["dropout"],
        first_kernel=p["first_kernel"],
    )


def _family(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if not k.startswith("width")}


def warm_start_known(study: optuna.Study, budget: int, space: str) -> list[str]:
    """Queue the shipped nets found at the budgets nearest ``budget`` (the better on validation
    first, among equally near ones), widths fitted to it.
    Returns one message per net: queued, already in the study, or why not."""
    if space != "modern":
        return [
            f"warm start: the shipped nets are modern-space nets; the {space} space "
            "starts from the sampler alone"
        ]
    present = {TrialRecord.of(t).warm_start for t in study.get_trials(deepcopy=False)}
    # nearest budget first; among nets found at the same budget, the best on validation
    nets = sorted(
        known_nets(), key=lambda n: (abs(math.log(n.budget / budget)), -n.val_mean, n.name)
    )
    messages: list[str] = []
    queued: list[dict[str, Any]] = []
    for net in nets:
        if len(queued) + sum(m.endswith("already in the study") for m in messages) >= WARM_NETS:
            break
        label = f"found/{net.name}.json"
        if label in present:
            messages.append(f"warm start: {label} is already in the study")
            continue
        params = fit_widths(modern.spec_params(net.spec), budget)
        if params is None:
            messages.append(f"warm start: {label} does not fit {budget:,} parameters at any width")
            continue
        params.update(modern.training_params(net.training))
        if _family(params) in map(_family, queued):  # found again at another budget
            messages.append(
                f"warm start: {label} is the same net and recipe, in other widths, "
                "as one already queued"
            )
            continue
        queued.append(params)
        study.enqueue_trial(params, user_attrs=records.queued(warm_start=label))
        n = count_params(build(params))
        messages.append(
            f"warm start: {label} queued ({n:,} parameters"
            + (
                f", widths fitted from {count_params(net.spec):,})"
                if n != count_params(net.spec)
                else ")"
            )
        )
    return messages


WARM_STARTS = ("found", "documented", "none")


def warm_start(source: str, study: optuna.Study, budget: int, space: str) -> list[str]:
    """Queue a search's first trials from ``source``: ``found`` (the shipped nets, fitted to the
    budget), ``documented`` (the write-up's nets that fit) or ``none``. Processes that start on
    a new study together queue them once: whoever claims the study first. Returns one message
    per net."""
    if source == "none":
        return []
    if not claim_once(study, f"warm_start:{source}"):
        return [f"warm start: another process queued the {source} nets of this study"]
    if source == "documented":
        from mnist_search.replay.run import warm_start as documented

        return documented(study, budget, space)
    return warm_start_known(study, budget, space)
