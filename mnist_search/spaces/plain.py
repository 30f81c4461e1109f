"""The plain search space, the write-up's kind of net, define-by-run with Optuna: one trial's
choices -> (ArchSpec, training settings).

The space is feasible by construction under the parameter budget. Choices are made in an order
where each one is offered only as far as some completion still fits: a width's upper bound is the
largest width for which the rest of the net, at its smallest, stays within budget; a choice with
one feasible option left is fixed rather than asked. Optuna allows an int range to change between
trials (categorical choices may not), so those bounds are int ranges.

Every documented experiment is a point of this space (see ``spec_params`` and ``training_params``).
"""

from __future__ import annotations

from typing import Any

import optuna

from mnist_search.net.spec import ArchSpec, ConvLayer, SpecError, count_params
from mnist_search.spaces.base import Space, largest

SPACE_VERSION = "1"
MAX_CONV = 4
KERNELS = (3, 5)
PADDINGS = ("valid", "same")
CHANNELS = (4, 128)  # per conv layer, log scale
HIDDEN = (8, 512)  # per hidden fully connected layer, log scale
MAX_HIDDEN = 2
DROPOUTS = (0.0, 0.1, 0.25, 0.5)
BATCH_SIZES = (32, 64, 128, 256, 512)
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "onecycle")
AUGMENTS = ("none", "small")
SGD_LR = (1e-3, 0.5)
SGD_MOMENTUM = (0.5, 0.99)
ADAM_LR = (1e-4, 3e-2)
WEIGHT_DECAY = (1e-5, 1e-1)


def _spec(
    n_conv: int,
    kernel: int,
    padding: int,
    pools: list[bool],
    batchnorm: bool,
    head: str,
    channels: list[int],
    hidden: list[int],
    dropout: float = 0.0,
) -> ArchSpec:
    convs = tuple(ConvLayer(c, kernel, padding, p) for c, p in zip(channels, pools))
    return ArchSpec(convs, batchnorm, dropout, head, tuple(hidden))


def _count(*args: Any) -> int | None:
    try:
        return count_params(_spec(*args))
    except SpecError:
        return None


def _fits(budget: int, *args: Any) -> bool:
    n = _count(*args)
    return n is not None and n <= budget


def smallest_net() -> ArchSpec:
    return _spec(1, KERNELS[0], 0, [False], False, "gap", [CHANNELS[0]], [])


def _pool_allowed(size: int, i: int, n_conv: int, shrink: int, pools: list[bool]) -> bool:
    """Whether a pool after conv i (0-based) leaves room for the remaining convs."""
    for j in range(i + 1):
        size -= shrink
        if pools[j] if j < i else True:
            size //= 2
    return size - shrink * (n_conv - i - 1) >= 1


def suggest_spec(trial: optuna.Trial, budget: int) -> ArchSpec:
    lo_c, lo_h = CHANNELS[0], HIDDEN[0]

    def minimal(n_conv, kernel, padding, pools, bn, head, n_hidden=0) -> bool:
        return _fits(
            budget, n_conv, kernel, padding, pools, bn, head, [lo_c] * n_conv, [lo_h] * n_hidden
        )

    n_max = largest(1, MAX_CONV, lambda n: minimal(n, 3, 0, [False] * n, False, "gap"))
    n_conv = trial.suggest_int("n_conv", 1, n_max)
    k_ok = [k for k in KERNELS if minimal(n_conv, k, 0, [False] * n_conv, False, "gap")]
    kernel = trial.suggest_categorical("kernel", KERNELS) if len(k_ok) > 1 else k_ok[0]
    padding = kernel // 2 if trial.suggest_categorical("padding", PADDINGS) == "same" else 0
    shrink = kernel - 1 - 2 * padding

    pools: list[bool] = []
    for i in range(n_conv):
        if _pool_allowed(28, i, n_conv, shrink, pools):
            pools.append(trial.suggest_categorical(f"pool{i + 1}", (False, True)))
        else:
            pools.append(False)

    bn_ok = minimal(n_conv, kernel, padding, pools, True, "gap")
    batchnorm = trial.suggest_categorical("batchnorm", (False, True)) if bn_ok else False
    if minimal(n_conv, kernel, padding, pools, batchnorm, "flatten"):
        head = trial.suggest_categorical("head", ("flatten", "gap"))
    else:
        head = "gap"
    dropout = trial.suggest_categorical("dropout", DROPOUTS)
    h_max = largest(
        0, MAX_HIDDEN, lambda n: minimal(n_conv, kernel, padding, pools, batchnorm, head, n)
    )
    n_hidden = trial.suggest_int("n_hidden", 0, h_max)

    channels = [lo_c] * n_conv
    hidden = [lo_h] * n_hidden

    def with_width(i: int, w: int, is_conv: bool) -> bool:
        ch, hd = list(channels), list(hidden)
        (ch if is_conv else hd)[i] = w
        return _fits(budget, n_conv, kernel, padding, pools, batchnorm, head, ch, hd)

    for i in range(n_conv):
        hi = largest(lo_c, CHANNELS[1], lambda w: with_width(i, w, True))
        channels[i] = trial.suggest_int(f"ch{i + 1}", lo_c, hi, log=True)
    for j in range(n_hidden):
        hi = largest(lo_h, HIDDEN[1], lambda w: with_width(j, w, False))
        hidden[j] = trial.suggest_int(f"fc{j + 1}", lo_h, hi, log=True)
    return _spec(n_conv, kernel, padding, pools, batchnorm, head, channels, hidden, dropout)


def suggest_training(trial: optuna.Trial) -> dict[str, Any]:
    """Training settings (not the protocol: epochs and seeds come from the study)."""
    hp: dict[str, Any] = {
        "batch_size": trial.suggest_categorical("batch_size", BATCH_SIZES),
        "optimizer": trial.suggest_categorical("optimizer", OPTIMIZERS),
    }
    if hp["optimizer"] == "sgd":
        hp["lr"] = trial.suggest_float("sgd_lr", *SGD_LR, log=True)
        hp["momentum"] = trial.suggest_float("sgd_momentum", *SGD_MOMENTUM)
    else:
        hp["lr"] = trial.suggest_float("adam_lr", *ADAM_LR, log=True)
        if hp["optimizer"] == "adamw":
            hp["weight_decay"] = trial.suggest_float("weight_decay", *WEIGHT_DECAY, log=True)
    hp["schedule"] = trial.suggest_categorical("schedule", SCHEDULES)
    hp["augment"] = trial.suggest_categorical("augment", AUGMENTS)
    return hp


def spec_params(spec: ArchSpec) -> dict[str, Any]:
    """The trial parameters that make ``suggest_spec`` produce ``spec`` (for enqueue_trial).

    Raises SpecError when the spec is not a point of this space.
    """
    kernels = {c.kernel for c in spec.convs}
    pads = {c.padding for c in spec.convs}
    if len(kernels) != 1 or kernels - set(KERNELS):
        raise SpecError(f"kernels {sorted(kernels)}: the space uses one kernel size from {KERNELS}")
    kernel = kernels.pop()
    if pads not in ({0}, {kernel // 2}):
        raise SpecError(f"paddings {sorted(pads)}: the space uses 0 or kernel//2 for all layers")
    if len(spec.convs) > MAX_CONV or len(spec.hidden) > MAX_HIDDEN:
        raise SpecError(
            f"{len(spec.convs)} convs and {len(spec.hidden)} hidden layers: the space "
            f"has at most {MAX_CONV} and {MAX_HIDDEN}"
        )
    if spec.dropout not in DROPOUTS:
        raise SpecError(f"dropout {spec.dropout}: the space has {DROPOUTS}")
    if spec.conv_dropout:
        raise SpecError(f"conv_dropout {spec.conv_dropout}: the space has none")
    p: dict[str, Any] = {
        "n_conv": len(spec.convs),
        "kernel": kernel,
        "padding": "same" if pads == {kernel // 2} and kernel > 1 else "valid",
        "batchnorm": spec.batchnorm,
        "head": spec.head,
        "dropout": spec.dropout,
        "n_hidden": len(spec.hidden),
    }
    for i, c in enumerate(spec.convs, start=1):
        p[f"pool{i}"] = c.pool
        p[f"ch{i}"] = c.out_channels
    for j, h in enumerate(spec.hidden, start=1):
        p[f"fc{j}"] = h
    return p


def training_params(hp: dict[str, Any]) -> dict[str, Any]:
    """Inverse of ``suggest_training`` for enqueueing fixed settings."""
    p = {
        "batch_size": hp["batch_size"],
        "optimizer": hp["optimizer"],
        "schedule": hp.get("schedule", "constant"),
        "augment": hp.get("augment", "none"),
    }
    if hp["optimizer"] == "sgd":
        p.update(sgd_lr=hp["lr"], sgd_momentum=hp["momentum"])
    else:
        p["adam_lr"] = hp["lr"]
        if hp["optimizer"] == "adamw":
            p["weight_decay"] = hp.get("weight_decay", 0.0)
    return p


SPACE = Space(
    "plain",
    SPACE_VERSION,
    suggest_spec,
    suggest_training,
    smallest_net,
    spec_params,
    training_params,
    # Fused variants of one net differ only in these (they change the training, not
    # a shape or the optimizer's kind).
    free=("sgd_lr", "sgd_momentum", "adam_lr", "weight_decay", "schedule", "augment"),
)
smallest_params = SPACE.smallest_params
