"""Train one spec under one set of training settings. No Optuna here: progress goes to a callback,
so this runs alone (``mnist-search train``) as well as inside a trial.

The data already sits on the device as normalised tensors; a batch is a slice of a permutation of
indices made on the device, so an epoch has no DataLoader and no host-device copy.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Callable

import torch
import torch._dynamo  # noqa: F401  (see below)
import torch.nn.functional as F
from torch import nn

from mnist_search.data.augment import STRENGTHS, augment
from mnist_search.data.dataset import Split, Splits
from mnist_search.errors import UsageError
from mnist_search.net.model import build_model, module_params
from mnist_search.net.spec import TYPES, ArchSpec, activations, check_value
from mnist_search.training.memory import one_heap_per_training
from mnist_search.training.steps import Steps

OPTIMIZERS = ("sgd", "adam", "adamw")


class SettingsError(UsageError):
    """Training settings that cannot be trained with, named with the valid ones: a one-line
    error wherever they come from (a spec file, the search, the Python API)."""


SCHEDULES = ("constant", "onecycle", "cosine")
EVAL_BATCH = 2000  # images per evaluation batch, at most
EVAL_BYTES = 128 << 20  # and at most this much feature-map memory per evaluation batch
# TrainConfig fields that belong to one run (the protocol's length, the seed), not to a recipe.
PER_RUN = ("epochs", "seed", "reports_per_epoch")
BENCHMARK_EPOCHS = 5  # cudnn.benchmark by default from this many epochs on
# torch._dynamo is imported above, with torch, because the first optimizer imports it lazily
# (2-3 s on a CPU), after the data is loaded: a Ctrl-C or SIGTERM landing inside that import
# leaves torch half-imported, and the process can then hang or end by SIGINT instead of with the
# stop's own exit status.


DISTILL = 0.5  # the teacher's weight in the loss when a teacher is given and no weight
TEMPERATURE = 4.0


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 1
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.5  # SGD only
    nesterov: bool = False  # SGD only
    weight_decay: float = 0.0
    schedule: str = "constant"
    label_smoothing: float = 0.0
    augment: str = "none"
    # Evaluate (and keep) an exponential moving average of the weights with this decay; 0: off.
    ema: float = 0.0
    # Knowledge distillation: the loss is (1 - distill) × the labels' cross-entropy + distill ×
    # temperature² × the KL divergence from a teacher's outputs softened by ``temperature``
    # (``train(teacher=...)``); 0: off.
    distill: float = 0.0
    temperature: float = TEMPERATURE
    reports_per_epoch: int = 1  # validation checks per epoch, each one reported to the callback
    seed: int = 0

    def __post_init__(self) -> None:
        # Settings may come from a file: check types first (True is an int to Python, and a
        # float batch size would fail only mid-training).
        for f in fields(self):
            check_value(f.name, getattr(self, f.name), TYPES[str(f.type)])
        checks = [
            (self.epochs >= 1, f"epochs={self.epochs}; must be >= 1"),
            (1 <= self.batch_size <= 65536, f"batch_size={self.batch_size}; must be 1 to 65536"),
            (0 <= self.momentum < 1, f"momentum={self.momentum}; must be in [0, 1)"),
            (0 <= self.weight_decay <= 10, f"weight_decay={self.weight_decay}; must be 0 to 10"),
            (
                self.optimizer in OPTIMIZERS,
                f"optimizer={self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}",
            ),
            (self.lr > 0, f"lr={self.lr}; must be > 0"),
            (
                self.schedule in SCHEDULES,
                f"schedule={self.schedule!r}; valid: {', '.join(SCHEDULES)}",
            ),
            (self.augment in STRENGTHS, f"augment={self.augment!r}; valid: {', '.join(STRENGTHS)}"),
            (0.0 <= self.ema < 1.0, f"ema={self.ema}; must be in [0, 1) (0: off)"),
            (
                0.0 <= self.label_smoothing < 1.0,
                f"label_smoothing={self.label_smoothing}; must be in [0, 1)",
            ),
            (
                not self.nesterov or (self.optimizer == "sgd" and self.momentum > 0),
                "nesterov=True needs optimizer 'sgd' with momentum > 0",
            ),
            (0.0 <= self.distill <= 1.0, f"distill={self.distill}; must be in [0, 1] (0: off)"),
            (
                1.0 <= self.temperature <= 20.0,
                f"temperature={self.temperature}; must be in [1, 20]",
            ),
            (
                self.reports_per_epoch >= 1,
                f"reports_per_epoch={self.reports_per_epoch}; must be >= 1",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise SettingsError(message)

    def to_dict(self) -> dict:
        out = asdict(self)
        if not self.distill:  # recipes without a teacher read as they did before it existed
            del out["distill"], out["temperature"]
        return out


@dataclass(frozen=True, kw_only=True)
class Speed:
    """How to run, not what to learn: switches that change speed, not the recipe.

    None means "the measured default for the device" (see ``resolve``).
    """

    amp: bool | None = None  # bf16 autocast of forward and loss
    channels_last: bool | None = None
    cudnn_benchmark: bool | None = None
    compile: bool = False  # torch.compile the model (pays off only for long trials)

    def resolve(self, device: torch.device, epochs: int = 1) -> Speed:
        cuda = device.type == "cuda"
        # cuDNN autotunes every new layer shape once per process, which costs more than a short
        # training of a new net gains from it; a long training pays it back.
        long_run = epochs >= BENCHMARK_EPOCHS
        return Speed(
            # bf16 autocast runs on CUDA and on the CPU; on the CPU only when asked for.
            amp=cuda if self.amp is None else self.amp and device.type in ("cuda", "cpu"),
            channels_last=cuda if self.channels_last is None else self.channels_last,
            cudnn_benchmark=(
                cuda and long_run if self.cudnn_benchmark is None else self.cudnn_benchmark and cuda
            ),
            compile=self.compile,
        )

    def to_dict(self) -> dict:
        return asdict(self)


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, step: int, loss: float):
        super().__init__(f"loss became {loss} at report step {step}")
        self.step, self.loss = step, loss


@dataclass
class TrainResult:
    n_params: int
    train_accuracy: float  # running accuracy over the last epoch's (augmented) training batches
    val_accuracy: float
    test_accuracy: float | None
    seconds: float  # wall time of the whole call, evaluation included
    train_seconds: float  # optimisation steps only
    images_per_second: float  # training images per second, evaluation excluded
    history: list[tuple[int, float]] = field(default_factory=list)  # (report step, val acc)
    model: nn.Module | None = None


ReportFn = Callable[[int, float], None]


def ema_decay(decay: float, step: int) -> float:
    """The averaging decay at optimisation step ``step`` (1-based): ``decay``, lowered early on
    so that the average forgets the random initialisation within a few dozen steps (a one-epoch
    trial has only a few hundred)."""
    return min(decay, (1 + step) / (10 + step))


class WeightAverage:
    """An exponential moving average of a model's weights and BatchNorm statistics."""

    def __init__(self, model: nn.Module, decay: float):
        self.model = copy.deepcopy(model)
        self.decay, self.steps = decay, 0
        self._pairs = [
            (a, b) for a, b in zip(self.model.state_dict().values(), model.state_dict().values())
        ]

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        w = 1 - ema_decay(self.decay, self.steps)
        for avg, live in self._pairs:
            if avg.is_floating_point():
                avg.lerp_(live, w)
            else:
                avg.copy_(live)  # BatchNorm's step counter


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = model.parameters()
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=cfg.nesterov,
        )
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def eval_batch(spec: ArchSpec) -> int:
    """Images per evaluation batch: large for speed, small enough that a wide net's feature maps
    stay within EVAL_BYTES (2,000 images of a 96-channel 28×28 net would take gigabytes)."""
    return max(16, min(EVAL_BATCH, EVAL_BYTES // (4 * activations(spec))))


@torch.inference_mode()
def evaluate(model: nn.Module, split: Split, batch: int = EVAL_BATCH) -> float:
    """Accuracy in percent, in large batches."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=split.labels.device)
    for i in range(0, len(split), batch):
        out = model(split.images[i : i + batch])
        correct += (out.argmax(1) == split.labels[i : i + batch]).sum()
    model.train(was_training)
    return 100.0 * correct.item() / len(split)


@torch.no_grad()  # not inference mode: the targets are saved for a student's backward pass
def soft_targets(model: nn.Module, split: Split, batch: int = EVAL_BATCH) -> torch.Tensor:
    """A trained net's log-probabilities for every image of ``split``: a teacher's outputs, for
    ``train(teacher=...)``. Computed once, on the images as they are (a student trained with
    augmentation learns the teacher's view of the unshifted image)."""
    was_training = model.training
    model.eval()
    out = torch.cat(
        [model(split.images[i : i + batch]).float() for i in range(0, len(split), batch)]
    )
    model.train(was_training)
    return out


def make_schedule(opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    """The per-step learning-rate schedule, or None for a constant rate."""
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=total_steps, cycle_momentum=False
        )
    if cfg.schedule == "cosine":
        # A short linear warm-up (2% of the steps) keeps BatchNorm nets from blowing up at a high
        # first rate; then cosine decay to zero.
        warm = max(1, total_steps // 50)

        def factor(i: int) -> float:
            if i < warm:
                return (i + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * (i - warm) / max(1, total_steps - warm)))

        return torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return None


def apply_speed(model: nn.Module, sp: Speed, device: torch.device):
    """``model`` in the memory format ``sp`` (resolved) asks for, cuDNN autotuning set, and the
    autocast context and input memory format to train it with."""
    fmt = torch.channels_last if sp.channels_last else torch.contiguous_format
    if sp.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = bool(sp.cudnn_benchmark)
    return model, fmt, torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(sp.amp))


def distill_targets(cfg: TrainConfig, teacher: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """The teacher's log-probabilities softened by the temperature, once for the whole training;
    None without distillation."""
    if not cfg.distill:
        return None
    if teacher is None or teacher.shape[0] != n:
        got = "none" if teacher is None else f"{teacher.shape[0]:,} images"
        raise SettingsError(
            f"distill={cfg.distill} needs a teacher's outputs for {n:,} images, got {got}"
        )
    return F.log_softmax(teacher.float() / cfg.temperature, dim=1)


def distilled(hard: torch.Tensor, out: torch.Tensor, soft: torch.Tensor, cfg: TrainConfig):
    """The labels' loss mixed with the KL divergence from the teacher's softened outputs (scaled by
    T², so its gradients keep their size whatever the temperature). ``out`` holds
    log-probabilities: softening them is softening the logits, log_softmax drops the constant."""
    t = cfg.temperature
    kl = F.kl_div(F.log_softmax(out / t, dim=1), soft, log_target=True, reduction="batchmean")
    return (1 - cfg.distill) * hard + cfg.distill * t * t * kl


@one_heap_per_training
def train(
    spec: ArchSpec,
    cfg: TrainConfig,
    splits: Splits,
    *,
    on_report: ReportFn | None = None,
    evaluate_test: bool = True,
    keep_model: bool = False,
    deadline: float | None = None,
    speed: Speed = Speed(),
    teacher: torch.Tensor | None = None,
) -> TrainResult:
    """Train ``spec`` on ``splits.train``; validate ``reports_per_epoch`` times per epoch (on
    the ``interim`` sample inside an epoch, on the whole validation split at its end).

    ``teacher``: a teacher's log-probabilities for every training image (``soft_targets``), which
    ``cfg.distill`` weighs against the labels.

    ``on_report(step, val_accuracy)`` may raise to stop training (a pruner does so); the exception
    propagates unchanged. Raises Diverged when the loss stops being finite, and TimeUp once
    ``time.time()`` passes ``deadline`` (checked every batch, so a slow net cannot overrun a
    search's time limit by a whole epoch).
    """
    data = splits.train
    device = data.images.device
    soft = distill_targets(cfg, teacher, len(data))
    run = Steps(
        len(data), cfg.batch_size, cfg.epochs, cfg.reports_per_epoch, splits.val, device, deadline
    )
    sp = speed.resolve(device, cfg.epochs)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    model, fmt, autocast = apply_speed(build_model(spec).to(device), sp, device)
    opt = make_optimizer(model, cfg)
    average = WeightAverage(model, cfg.ema) if cfg.ema else None
    judged = average.model if average is not None else model  # what is evaluated and kept
    step_model = torch.compile(model) if sp.compile else model
    sched = make_schedule(opt, cfg, run.total)
    eval_bs = eval_batch(spec)
    history: list[tuple[int, float]] = []
    train_acc = 0.0
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(run.n, device=device, generator=gen)
        correct = torch.zeros((), dtype=torch.long, device=device)
        loss_sum = torch.zeros((), device=device)
        for b, part in run.batches(epoch):
            idx = perm[part]
            x, y = data.images[idx], data.labels[idx]
            if cfg.augment != "none":
                x = augment(x, cfg.augment, gen, splits.background)
            with autocast:
                out = step_model(x.contiguous(memory_format=fmt))
                # The model returns log-probabilities; cross_entropy's log_softmax leaves them
                # unchanged, so this is the NLL loss, with optional label smoothing.
                loss = F.cross_entropy(out.float(), y, label_smoothing=cfg.label_smoothing)
                if soft is not None:
                    loss = distilled(loss, out.float(), soft[idx], cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            if average is not None:
                average.update()
            # Accumulate on the device; reading a value back each step would stall a GPU.
            correct += (out.detach().argmax(1) == y).sum()
            loss_sum += loss.detach()
            judge = run.judge_on(b)
            if judge is None:
                continue
            total = loss_sum.item()
            if not math.isfinite(total):
                raise Diverged(run.step, total)
            # Evaluation stays in float32 and uncompiled: recorded accuracies must be what an
            # exported model reproduces.
            with run.evaluating():
                val = evaluate(judged, judge, eval_bs)
            history.append((run.step, val))
            if on_report is not None:
                on_report(run.step, val)
            run.step += 1
        train_acc = 100.0 * correct.item() / run.n
    test_acc = None
    if evaluate_test:
        with run.evaluating():
            test_acc = evaluate(judged, splits.test, eval_bs)
    t = run.timing()
    return TrainResult(
        n_params=module_params(model),
        train_accuracy=train_acc,
        val_accuracy=history[-1][1],
        test_accuracy=test_acc,
        seconds=t.seconds,
        train_seconds=t.train_seconds,
        images_per_second=t.images_per_second,
        history=history,
        model=judged.eval() if keep_model else None,
    )
