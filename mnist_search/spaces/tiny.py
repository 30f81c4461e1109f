"""The tiny-net space: the family of the published 697- and 997-parameter MNIST nets
(JoshWarn/Parameter-Efficient-MNIST), for budgets of a few thousand parameters and less.

A net is one 3×3 conv, a 2×2 max-pool, then ``blocks`` (3 to 5) depthwise-separable 3×3 blocks
with *valid* padding (28 → 26 → 13 → 11 → 9 → 7 → 5 → 3), each of its own width, into global
average pooling and the output layer. Normalisation is optional (``norm``: BatchNorm or none; the
published nets have none, and a conv bias instead), the activation ReLU or LeakyReLU(0.2)
(``activation``; theirs is leaky), dropout after every block (``conv_dropout``; theirs 0.1).
The recipe is the modern space's.

Feasible by construction, as the other spaces: each width in turn gets the largest upper bound
that leaves room for the blocks after it at the narrowest width.
"""

from __future__ import annotations

from typing import Any

import optuna

from mnist_search.net.spec import ArchSpec, ConvLayer, SpecError, count_params
from mnist_search.spaces.base import Space, largest, pick
from mnist_search.spaces.modern import SPACE as MODERN

SPACE_VERSION = "tiny-1"
BLOCKS = (3, 4, 5)  # separable blocks after the pool; 5 leaves a 3×3 map
WIDTH = (4, 64)
NORMS = ("batchnorm", "none")
ACTIVATIONS = ("relu", "leaky")
CONV_DROPOUTS = (0.0, 0.05, 0.1)


def build_spec(
    widths: list[int],
    *,
    norm: str = "none",
    activation: str = "leaky",
    conv_dropout: float = 0.0,
) -> ArchSpec:
    """``widths[0]`` is the first conv's, the rest one per separable block."""
    convs = [ConvLayer(widths[0], 3, 0, pool=True)]
    convs += [ConvLayer(w, 3, 0, kind="sep") for w in widths[1:]]
    return ArchSpec(
        tuple(convs),
        batchnorm=norm == "batchnorm",
        head="gap",
        conv_dropout=conv_dropout,
        activation=activation,
    )


def _fits(budget: int, widths: list[int], **kw: Any) -> bool:
    try:
        return count_params(build_spec(widths, **kw)) <= budget
    except SpecError:
        return False


def smallest_net() -> ArchSpec:
    return build_spec([WIDTH[0]] * (1 + BLOCKS[0]))


def suggest_spec(trial: optuna.Trial, budget: int) -> ArchSpec:
    lo = WIDTH[0]
    ok = [b for b in BLOCKS if _fits(budget, [lo] * (1 + b))]
    if not ok:
        raise SpecError(f"no net of the tiny space fits {budget:,} parameters")
    blocks = trial.suggest_int("blocks", ok[0], ok[-1])
    kw: dict[str, Any] = {}
    kw["norm"] = pick(trial, "norm", NORMS, lambda n: _fits(budget, [lo] * (1 + blocks), norm=n))
    kw["activation"] = trial.suggest_categorical("activation", ACTIVATIONS)
    kw["conv_dropout"] = trial.suggest_categorical("conv_dropout", CONV_DROPOUTS)
    widths = [lo] * (1 + blocks)
    for i in range(1 + blocks):

        def with_width(w: int) -> bool:
            return _fits(budget, widths[:i] + [w] + widths[i + 1 :], **kw)

        widths[i] = trial.suggest_int(f"width{i}", lo, largest(lo, WIDTH[1], with_width), log=True)
    return build_spec(widths, **kw)


def build(p: dict[str, Any]) -> ArchSpec:
    return build_spec(
        [p[f"width{i}"] for i in range(1 + p["blocks"])],
        norm=p["norm"],
        activation=p["activation"],
        conv_dropout=p["conv_dropout"],
    )


def spec_params(spec: ArchSpec) -> dict[str, Any]:
    """The trial parameters that make ``spec``; SpecError for a net outside the space."""
    p: dict[str, Any] = {
        "blocks": len(spec.convs) - 1,
        "norm": "batchnorm" if spec.batchnorm else "none",
        "activation": spec.activation,
        "conv_dropout": spec.conv_dropout,
    }
    p |= {f"width{i}": c.out_channels for i, c in enumerate(spec.convs)}
    try:
        same = (
            p["blocks"] in BLOCKS
            and spec.conv_dropout in CONV_DROPOUTS
            and all(WIDTH[0] <= c.out_channels <= WIDTH[1] for c in spec.convs)
            and build(p) == spec
        )
    except (SpecError, KeyError):
        same = False
    if not same:
        raise SpecError("not a net of the tiny space")
    return p


def fit_widths(params: dict[str, Any], budget: int) -> dict[str, Any] | None:
    """``params`` with every width scaled by one factor, the largest that fits ``budget``."""
    n = 1 + params["blocks"]
    base = [params[f"width{i}"] for i in range(n)]

    def scaled(a: float) -> dict[str, Any]:
        return params | {
            f"width{i}": min(WIDTH[1], max(WIDTH[0], round(a * w))) for i, w in enumerate(base)
        }

    def fits(p: dict[str, Any]) -> bool:
        try:
            return count_params(build(p)) <= budget
        except SpecError:
            return False

    lo, hi = 0.0, float(WIDTH[1])
    if not fits(scaled(lo)):
        return None
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(scaled(mid)) else (lo, mid)
    return scaled(lo)


SPACE = Space(
    "tiny",
    SPACE_VERSION,
    suggest_spec,
    MODERN.suggest_training,
    smallest_net,
    spec_params,
    MODERN.training_params,
    fit_widths=fit_widths,
    build=build,
    free=MODERN.free,
)
