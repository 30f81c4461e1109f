"""The modern search space: BatchNorm stages of 3×3 blocks, optionally depthwise-separable and
residual, 1×1 transitions between stages, a global-average-pooling or flatten head, and a modern
training recipe (one-cycle or cosine, label smoothing, on-device augmentation, Nesterov SGD or
AdamW).

Like the plain space it is feasible by construction: structural choices are offered only while
their smallest completion fits the budget, then each stage's width gets the largest upper bound
that leaves room for the remaining stages at their minimum width.

A net is ``stages`` stages (2 or 3) separated by 2×2 max-pools (28 → 14 → 7 with "same"
padding; "valid" pads no block, "valid2" only the first two, as the published 1,936- and
2,180-parameter nets do). Stage s has ``blocks<s>`` 3×3 blocks of width ``width<s>``; the net's first block may
use a 5×5 kernel instead (``first_kernel``: the best published nets under 2,000 parameters spend
their first layer on a larger receptive field). With ``transition``, a 1×1
conv maps one stage's width to the next after the pool, so every block of the next stage keeps
its input's shape; with ``residual`` each block that keeps its input's shape adds that input
before its activation. With ``separable`` every block but the net's first (a depthwise conv on
one input channel would be a waste) is depthwise-separable. With ``share`` (not "valid", a
stage of 3 or 4 blocks) the third and fourth blocks of a stage reuse the weights of the block
before when that one keeps its shape (padded), each use with a BatchNorm of its own, as the
smallest published nets do. With ``factorize`` the last
stage's blocks (the net's first excepted) are factorized, a 3×1 conv then a 1×3, each with its
BatchNorm: two thirds of a 3×3 conv's weights for the same receptive field, as the published
4,142-parameter net does. A flatten head may follow a 1×1 conv that squeezes the last map to
``squeeze`` (4 or 8) channels, as the published 4,142- and 4,862-parameter nets do before their
flatten. The head may put one hidden fully connected layer (``hidden``: 8 to 32 wide) before
the output. Dropout may act in the head (``dropout``) and after every conv block
(``conv_dropout``, as the published 4,142- and 4,862-parameter nets do).

The recipe may keep an exponential moving average of the weights (``ema``) and judge that.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import optuna

from mnist_search.net.spec import ArchSpec, ConvLayer, SpecError, count_params, multiply_adds
from mnist_search.spaces.base import Space, largest, pick
from mnist_search.spaces.design import COLUMNS, DesignTrial, latin_hypercube, log_between

SPACE_VERSION = "modern-6"
STAGES = (2, 3)
MAX_BLOCKS = 4
WIDTH = (4, 96)  # per stage, log scale
# "valid2": the net's first two blocks unpadded, the rest "same" (the published 1,936- and
# 2,180-parameter nets: 28 → 26 → pool 13 → 11, then shape-keeping shared blocks).
PADDINGS = ("same", "valid", "valid2")
FIRST_KERNELS = (3, 5)
HIDDEN = (0, 8, 16, 24, 32)  # a hidden fully connected layer's width (0: none); evenly spaced
SQUEEZE = (0, 4, 8)  # a 1×1 conv's width before a flatten head (0: none); evenly spaced
EMAS = (0.0, 0.99, 0.999)
DROPOUTS = (0.0, 0.1, 0.2)
CONV_DROPOUTS = (0.0, 0.05, 0.1)  # after every conv block
# One epoch at batch 32 is four times the steps of one at 128: a one-epoch training wants them.
BATCH_SIZES = (32, 64, 128, 256)
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("onecycle", "cosine")
LABEL_SMOOTHING = (0.0, 0.05, 0.1)
AUGMENTS = ("none", "small", "medium")
SGD_LR = (0.02, 1.0)
SGD_WD = (1e-5, 1e-3)
ADAMW_LR = (1e-3, 3e-2)
ADAMW_WD = (1e-4, 1e-1)


def build_spec(
    stages: int,
    padding: str,
    blocks: list[int],
    widths: list[int],
    *,
    separable: bool = False,
    residual: bool = False,
    transition: bool = False,
    share: bool = False,
    factorize: bool = False,
    head: str = "gap",
    squeeze: int = 0,
    hidden: int = 0,
    dropout: float = 0.0,
    first_kernel: int = 3,
    conv_dropout: float = 0.0,
) -> ArchSpec:
    """The spec these choices describe; no Optuna, so it can be rebuilt from stored params."""
    convs: list[ConvLayer] = []
    c_prev = 1
    n_blocks = 0  # blocks made so far (transitions not counted)
    for s in range(stages):
        w = widths[s]
        if s > 0 and transition:
            convs.append(ConvLayer(w, 1, 0))
            c_prev = w
        for b in range(blocks[s]):
            if share and b >= 2 and convs[-1].padding == convs[-1].kernel // 2:
                # From the third block on, a stage's blocks reuse the weights of the block
                # before when it keeps the stage's shape: depth for the price of a BatchNorm.
                convs[-1] = dataclasses.replace(convs[-1], repeat=convs[-1].repeat + 1)
                continue
            same = padding == "same" or (padding == "valid2" and n_blocks >= 2)
            n_blocks += 1
            k = 3 if convs else first_kernel
            if not convs:
                kind = "conv"  # a depthwise or k×1 conv on one input channel would be a waste
            elif factorize and s == stages - 1:
                kind = "fact"
            else:
                kind = "sep" if separable else "conv"
            convs.append(
                ConvLayer(
                    w, k, k // 2 if same else 0, False, kind, residual and same and c_prev == w
                )
            )
            c_prev = w
        if s < stages - 1:
            convs[-1] = dataclasses.replace(convs[-1], pool=True)
    if squeeze:
        convs.append(ConvLayer(squeeze, 1, 0))
    return ArchSpec(
        tuple(convs),
        batchnorm=True,
        dropout=dropout,
        head=head,
        hidden=(hidden,) if hidden else (),
        conv_dropout=conv_dropout,
    )


def _fits(budget: int, *args: Any, **kwargs: Any) -> bool:
    try:
        return count_params(build_spec(*args, **kwargs)) <= budget
    except SpecError:
        return False


def smallest_net() -> ArchSpec:
    return build_spec(2, "same", [1, 1], [WIDTH[0]] * 2)


def suggest_spec(trial: optuna.Trial, budget: int) -> ArchSpec:
    lo = WIDTH[0]

    def minimal(stages, padding="same", blocks=None, **kw) -> bool:
        return _fits(budget, stages, padding, blocks or [1] * stages, [lo] * stages, **kw)

    s_ok = [s for s in STAGES if minimal(s)]
    stages = trial.suggest_int("stages", s_ok[0], s_ok[-1])
    padding = pick(trial, "padding", PADDINGS, lambda p: minimal(stages, p))
    kw: dict[str, Any] = {}
    kw["first_kernel"] = pick(
        trial, "first_kernel", FIRST_KERNELS, lambda k: minimal(stages, padding, first_kernel=k)
    )
    # Shared blocks cost only their BatchNorms, so more blocks fit where sharing is offered.
    can_share = padding != "valid"
    blocks = [1] * stages
    for s in range(stages):

        def with_blocks(b: int) -> bool:
            return minimal(
                stages, padding, blocks[:s] + [b] + blocks[s + 1 :], share=can_share, **kw
            )

        blocks[s] = trial.suggest_int(f"blocks{s + 1}", 1, largest(1, MAX_BLOCKS, with_blocks))
    names = ("separable", "factorize", "transition") + (("residual",) if can_share else ())
    if can_share and max(blocks) >= 3:  # fewer blocks leave nothing to share
        names += ("share",)
    for name in names:
        # Until ``share`` is chosen, a completion may share (the blocks were sized for it).
        kw[name] = pick(
            trial,
            name,
            (False, True),
            lambda v: minimal(stages, padding, blocks, **({"share": can_share} | kw | {name: v})),
        )
    kw["head"] = pick(
        trial, "head", ("gap", "flatten"), lambda h: minimal(stages, padding, blocks, **kw, head=h)
    )
    # Ints with a step, not categoricals: their feasible ranges shrink with the budget, and
    # Optuna keeps one list of choices per parameter for a whole study.
    if kw["head"] == "flatten":  # before global pooling a squeeze would only lose channels
        fit = [q for q in SQUEEZE if minimal(stages, padding, blocks, **kw, squeeze=q)]
        if len(fit) > 1:
            kw["squeeze"] = trial.suggest_int("squeeze", 0, fit[-1], step=SQUEEZE[1])
    fit = [h for h in HIDDEN if minimal(stages, padding, blocks, **kw, hidden=h)]
    if len(fit) > 1:
        kw["hidden"] = trial.suggest_int("hidden", 0, fit[-1], step=HIDDEN[1])
    kw["dropout"] = trial.suggest_categorical("dropout", DROPOUTS)
    kw["conv_dropout"] = trial.suggest_categorical("conv_dropout", CONV_DROPOUTS)
    widths = [lo] * stages
    for s in range(stages):

        def with_width(w: int) -> bool:
            return _fits(budget, stages, padding, blocks, widths[:s] + [w] + widths[s + 1 :], **kw)

        widths[s] = trial.suggest_int(
            f"width{s + 1}", lo, largest(lo, WIDTH[1], with_width), log=True
        )
    return build_spec(stages, padding, blocks, widths, **kw)


def suggest_training(trial: optuna.Trial) -> dict[str, Any]:
    hp: dict[str, Any] = {
        "batch_size": trial.suggest_categorical("batch_size", BATCH_SIZES),
        "optimizer": trial.suggest_categorical("optimizer", OPTIMIZERS),
    }
    if hp["optimizer"] == "sgd":
        hp.update(
            lr=trial.suggest_float("sgd_lr", *SGD_LR, log=True),
            momentum=0.9,
            nesterov=True,
            weight_decay=trial.suggest_float("sgd_wd", *SGD_WD, log=True),
        )
    else:
        hp.update(
            lr=trial.suggest_float("adamw_lr", *ADAMW_LR, log=True),
            weight_decay=trial.suggest_float("adamw_wd", *ADAMW_WD, log=True),
        )
    hp["schedule"] = trial.suggest_categorical("schedule", SCHEDULES)
    hp["label_smoothing"] = trial.suggest_categorical("label_smoothing", LABEL_SMOOTHING)
    hp["augment"] = trial.suggest_categorical("augment", AUGMENTS)
    hp["ema"] = trial.suggest_categorical("ema", EMAS)
    return hp


def fit_widths(
    params: dict[str, Any], budget: int, macs: int | None = None
) -> dict[str, Any] | None:
    """``params`` (a modern-space net) with every stage's width scaled by one factor, the largest
    that fits ``budget`` (and ``macs`` multiply-adds per image, if given); None when not even the
    narrowest widths fit."""
    stages = params["stages"]
    base = [params[f"width{s}"] for s in range(1, stages + 1)]
    lo_w, hi_w = WIDTH

    def scaled(a: float) -> dict[str, Any]:
        p = dict(params)
        for s, w in enumerate(base, start=1):
            p[f"width{s}"] = min(hi_w, max(lo_w, round(a * w)))
        return p

    lo, hi = 0.0, float(hi_w)  # widths are clipped, so no factor beyond hi_w changes anything
    if not _fits_params(scaled(lo), budget, macs):
        return None
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _fits_params(scaled(mid), budget, macs) else (lo, mid)
    return scaled(lo)


def _fits_params(p: dict[str, Any], budget: int, macs: int | None = None) -> bool:
    try:
        spec = build(p)
        return count_params(spec) <= budget and (macs is None or compute(spec) <= macs)
    except SpecError:
        return False


def compute(spec: ArchSpec) -> int:
    """Multiply-adds per image: what a net costs to train, which its parameters do not bound."""
    return sum(m for _, m in multiply_adds(spec))


def top_up(params: dict[str, Any], budget: int, macs: int | None = None) -> dict[str, Any]:
    """``params`` with stages widened one channel at a time, first stage first, while the net
    still fits ``budget``. One factor for every width moves in coarse steps where widths are
    small (4 → 5 is a quarter more of everything), which left design nets at half the budget."""
    grown = True
    while grown:
        grown = False
        for s in range(1, params["stages"] + 1):
            key = f"width{s}"
            wider = params | {key: params[key] + 1}
            if params[key] < WIDTH[1] and _fits_params(wider, budget, macs):
                params, grown = wider, True
    return params


def build(p: dict[str, Any]) -> ArchSpec:
    stages = p["stages"]
    return build_spec(
        stages,
        p["padding"],
        [p[f"blocks{s}"] for s in range(1, stages + 1)],
        [p[f"width{s}"] for s in range(1, stages + 1)],
        separable=p["separable"],
        residual=p["residual"],
        transition=p["transition"],
        # Nets from before these choices existed have neither.
        share=p.get("share", False),
        factorize=p.get("factorize", False),
        head=p["head"],
        squeeze=p.get("squeeze", 0),
        hidden=p.get("hidden", 0),
        dropout=p["dropout"],
        first_kernel=p["first_kernel"],
        conv_dropout=p.get("conv_dropout", 0.0),
    )


def spec_params(spec: ArchSpec) -> dict[str, Any]:
    """The trial parameters that make ``spec`` (inverse of ``suggest_spec``), to queue a known
    net as an ordinary trial the sampler learns from. Raises SpecError for a spec outside the
    space."""
    convs = spec.convs
    if not convs or not spec.batchnorm or len(spec.hidden) > 1:
        raise SpecError("the modern space has BatchNorm nets with at most one hidden layer")
    if spec.conv_dropout not in CONV_DROPOUTS:
        raise SpecError(f"conv_dropout {spec.conv_dropout}: the space has {CONV_DROPOUTS}")
    # A 1×1 conv last is a squeeze: a transition always has a stage's blocks after it.
    squeeze = convs[-1].out_channels if len(convs) > 1 and convs[-1].kernel == 1 else 0
    if squeeze:
        convs = convs[:-1]
    first = convs[0]
    padded = [c.padding > 0 for c in convs if c.kernel != 1]
    if not padded:
        raise SpecError("the modern space's nets have a 3×3 or 5×5 block")
    p: dict[str, Any] = {
        "padding": "same" if padded[0] else "valid" if not any(padded) else "valid2",
        "first_kernel": first.kernel,
        "head": spec.head,
        "squeeze": squeeze,
        "hidden": spec.hidden[0] if spec.hidden else 0,
        "dropout": spec.dropout,
        "conv_dropout": spec.conv_dropout,
        "separable": any(c.kind == "sep" for c in convs),
        "factorize": any(c.kind == "fact" for c in convs),
        "transition": any(c.kernel == 1 for c in convs),
        "residual": any(c.residual for c in convs),
        "share": any(c.repeat > 1 for c in convs),
    }
    blocks, widths, count = [], [], 0
    for c in convs:
        if c.kernel != 1:
            count += c.repeat
        if c.pool or c is convs[-1]:
            blocks.append(count)
            widths.append(c.out_channels)
            count = 0
    p["stages"] = len(blocks)
    for s, (b, w) in enumerate(zip(blocks, widths), start=1):
        p[f"blocks{s}"], p[f"width{s}"] = b, w
    try:
        same = build(p) == spec
    except (SpecError, IndexError):
        same = False
    if not same:
        raise SpecError("not a net of the modern space")
    return p


def training_params(hp: dict[str, Any]) -> dict[str, Any]:
    """Inverse of ``suggest_training``: trial parameters for these training settings."""
    p = {
        "batch_size": hp["batch_size"],
        "optimizer": hp["optimizer"],
        "schedule": hp["schedule"],
        "label_smoothing": hp.get("label_smoothing", 0.0),
        "augment": hp.get("augment", "none"),
        "ema": hp.get("ema", 0.0),
    }
    prefix = "sgd" if hp["optimizer"] == "sgd" else "adamw"
    p[f"{prefix}_lr"], p[f"{prefix}_wd"] = hp["lr"], hp.get("weight_decay", 0.0)
    return p


# What the start-up design trains its nets with: the region where the shipped small nets found
# their recipes (mnist_search/catalog/found/: batch 128, one-cycle, Nesterov SGD at 0.12–0.16 or AdamW at
# 0.006–0.015, label smoothing 0.05, no augmentation for short trainings, weight averaging).
# The architecture is explored under it; the sampler then tunes the recipe over the whole space.
PRIOR_SGD_LR = (0.08, 0.3)
PRIOR_SGD_WD = (2e-5, 5e-4)
PRIOR_ADAMW_LR = (4e-3, 2e-2)
PRIOR_ADAMW_WD = (2e-4, 2e-3)
BUDGET_USED = (0.6, 1.0)  # the share of the budget a design net uses
TAPER = (0.5, 2.0)  # the ratio of one stage's width to the one before
# The design's nets run first, before the sampler knows what is slow, and a budget in parameters
# does not bound compute: at 25,000 the design drew nets of 1.3-12.7 million multiply-adds per
# image, 17-61 s an epoch measured on a 2-core CPU, so a 3-minute search was the design alone
# (benchmarks/runs/2026-12-06-small-budget-levers). They are
# bounded to this many multiply-adds per parameter of the budget (the nets searches found on the
# CPU have 35-67; the shipped ones up to 306, all under 2.7 million), and never below the floor,
# where every net is fast.
DESIGN_MACS_PER_PARAM = 100
DESIGN_MACS_FLOOR = 1_000_000


def design_macs(budget: int) -> int:
    """The most multiply-adds per image a design net of this budget may take."""
    return max(DESIGN_MACS_FLOOR, DESIGN_MACS_PER_PARAM * budget)


def prior_recipe(u: Sequence[float]) -> dict[str, Any]:
    """Training settings from the recipe prior, for four uniforms in [0, 1)."""
    sgd = u[0] < 0.5
    lr, wd = (PRIOR_SGD_LR, PRIOR_SGD_WD) if sgd else (PRIOR_ADAMW_LR, PRIOR_ADAMW_WD)
    hp: dict[str, Any] = {
        "batch_size": 128,
        "optimizer": "sgd" if sgd else "adamw",
        "lr": log_between(u[1], *lr),
        "weight_decay": log_between(u[2], *wd),
        "schedule": "onecycle",
        "label_smoothing": 0.05,
        "augment": "none",
        "ema": 0.99 if u[3] < 0.5 else 0.999,
    }
    if sgd:
        hp.update(momentum=0.9, nesterov=True)
    return hp


def startup_design(budget: int, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` trial parameter sets that cover the space's structural choices evenly (a Latin
    hypercube through ``suggest_spec``), each net's widths set by a sampled taper and scaled
    to use a sampled share of the budget within ``design_macs``, trained with the recipe prior.
    A point whose structure exceeds the compute bound even at its narrowest is replaced by the
    next point of a second hypercube that fits."""
    macs = design_macs(budget)
    rows = [*latin_hypercube(n, COLUMNS + 6, seed), *latin_hypercube(4 * n, COLUMNS + 6, seed + 1)]
    out: list[dict[str, Any]] = []
    for row in rows:
        if len(out) == n:
            break
        sampled = spec_params(suggest_spec(DesignTrial(row[:COLUMNS]), budget))  # type: ignore[arg-type]
        # Dropout only slows a short training down; the sampler may add it later.
        sampled |= {"dropout": 0.0, "conv_dropout": 0.0}
        params = dict(sampled)
        taper = log_between(row[COLUMNS + 1], *TAPER)
        for s in range(1, params["stages"] + 1):
            params[f"width{s}"] = max(WIDTH[0], round(16 * taper ** (s - 1)))
        share = int((BUDGET_USED[0] + row[COLUMNS] * (BUDGET_USED[1] - BUDGET_USED[0])) * budget)
        # None when even the narrowest widths of this taper do not fit: the sampled ones, scaled.
        fitted = fit_widths(params, share, macs) or fit_widths(sampled, share, macs)
        if fitted is None:
            continue
        params = top_up(fitted, share, macs)
        if count_params(build(params)) < BUDGET_USED[0] * budget:  # one channel overshot the share
            params = top_up(params, budget, macs)
        out.append(params | training_params(prior_recipe(row[COLUMNS + 2 :])))
    return out


SPACE = Space(
    "modern",
    SPACE_VERSION,
    suggest_spec,
    suggest_training,
    smallest_net,
    spec_params,
    training_params,
    startup=startup_design,
    fit_widths=fit_widths,
    build=build,
    free=(
        "sgd_lr",
        "sgd_wd",
        "adamw_lr",
        "adamw_wd",
        "schedule",
        "label_smoothing",
        "augment",
        "ema",
    ),
)
smallest_params = SPACE.smallest_params
