"""Train K candidates of one architecture together in one fused step (torch.func + vmap).

Seed replicas and learning-rate or optimizer variants share every shape, so their parameters can
be stacked along a new leading dimension and one vmapped forward/backward serves all K. For tiny
nets this turns K small kernels per layer into one larger one, which is what keeps a GPU busy.

Each candidate keeps its own initialisation, batch order and augmentation (its own seed), so a
fused run follows the same path as K separate ``train`` calls, up to floating-point rounding.
No Optuna here either.
"""

from __future__ import annotations

import math
import time
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from .augment import augment
from .data import Splits
from .model import build_model, module_params
from .memory import keep_freed_memory
from .spec import ArchSpec
from .train import (Diverged, ReportFn, TimeUp, TrainConfig, TrainResult, batches_per_epoch,
                    eval_batch, evaluate, report_points)

SHARED = ("epochs", "batch_size", "optimizer", "schedule", "augment", "reports_per_epoch")


class FusedError(ValueError):
    pass


def check_fusable(spec: ArchSpec, cfgs: list[TrainConfig]) -> None:
    if not cfgs:
        raise FusedError("no candidates to train")
    for name in SHARED:
        values = {getattr(c, name) for c in cfgs}
        if len(values) > 1:
            raise FusedError(f"fused candidates must share {name}; got {sorted(map(str, values))}")
    if spec.batchnorm:
        # BatchNorm's running statistics are updated in place, which vmap cannot batch.
        raise FusedError("fused training does not support BatchNorm specs")
    if spec.dropout:
        raise FusedError("fused training does not support dropout (its random masks would not "
                         "match separate runs)")
    if any(l.kind != "conv" or l.residual for l in spec.convs):
        raise FusedError("fused training supports plain conv stacks only (no separable or "
                         "residual blocks)")
    for c in cfgs:
        if c.schedule not in ("constant", "onecycle") or c.label_smoothing or c.nesterov:
            raise FusedError("fused training supports constant and onecycle schedules without "
                             "label smoothing or Nesterov momentum")


def _lr_schedules(cfgs: list[TrainConfig], total: int) -> torch.Tensor:
    """[steps, K] learning rates: what each candidate's own scheduler would give."""
    out = torch.empty(total, len(cfgs))
    for k, c in enumerate(cfgs):
        if c.schedule == "constant":
            out[:, k] = c.lr
            continue
        dummy = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=c.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(dummy, max_lr=c.lr, total_steps=total,
                                                    cycle_momentum=False)
        for i in range(total):
            out[i, k] = dummy.param_groups[0]["lr"]
            dummy.step()
            sched.step()
    return out


class _StackedOptimizer:
    """SGD with momentum, Adam and AdamW as torch.optim defines them, with per-candidate
    hyperparameters broadcast over the stacked leading dimension."""

    def __init__(self, params: dict[str, torch.Tensor], cfgs: list[TrainConfig]):
        self.kind = cfgs[0].optimizer
        self.params = params
        dev = next(iter(params.values())).device
        self.mom = torch.tensor([c.momentum for c in cfgs], device=dev)
        self.wd = torch.tensor([c.weight_decay for c in cfgs], device=dev)
        self.state = {n: {} for n in params}
        self.t = 0

    @staticmethod
    def _b(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return v.view(-1, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def step(self, lr: torch.Tensor) -> None:
        self.t += 1
        for name, p in self.params.items():
            g, st = p.grad, self.state[name]
            lr_b, wd_b = self._b(lr, p), self._b(self.wd, p)
            if self.kind == "sgd":
                g = g + wd_b * p
                buf = st.get("buf")
                # torch.optim.SGD: the first step's buffer is the gradient itself.
                buf = g.clone() if buf is None else buf.mul_(self._b(self.mom, p)).add_(g)
                st["buf"] = buf
                p.sub_(lr_b * buf)
                continue
            if self.kind == "adam":
                g = g + wd_b * p
            else:  # adamw: decoupled weight decay
                p.mul_(1 - lr_b * wd_b)
            m = st.setdefault("m", torch.zeros_like(p)).mul_(0.9).add_(g, alpha=0.1)
            v = st.setdefault("v", torch.zeros_like(p)).mul_(0.999).addcmul_(g, g, value=0.001)
            c1, c2 = 1 - 0.9 ** self.t, 1 - 0.999 ** self.t
            p.sub_(lr_b / c1 * m / ((v / c2).sqrt() + 1e-8))


def train_fused(spec: ArchSpec, cfgs: list[TrainConfig], splits: Splits, *,
                on_report: list[ReportFn | None] | None = None, evaluate_test: bool = True,
                keep_models: bool = False,
                deadline: float | None = None) -> list[TrainResult | Exception]:
    """Train ``len(cfgs)`` candidates of ``spec`` at once.

    Returns, per candidate, its TrainResult, or the exception that stopped it: whatever its
    ``on_report[k](step, val)`` raised (a pruner), or Diverged. A stopped candidate keeps being
    computed with the others (it shares their kernels) but is no longer evaluated or reported.
    TimeUp stops all of them.
    """
    check_fusable(spec, cfgs)
    start = time.perf_counter()
    data = splits.train
    device = data.images.device
    K = len(cfgs)
    if device.type == "cpu":
        keep_freed_memory()
    models = []
    for c in cfgs:
        torch.manual_seed(c.seed)  # the same initialisation as a separate run with this seed
        models.append(build_model(spec).to(device))
    params, buffers = stack_module_state(models)
    base = build_model(spec).to("meta")

    def loss_fn(p, b, x, y):
        out = functional_call(base, (p, b), (x,))
        return F.nll_loss(out, y), out

    grad_fn = vmap(torch.func.grad_and_value(loss_fn, has_aux=True), in_dims=(0, 0, 0, 0))
    gens = [torch.Generator(device=device).manual_seed(c.seed) for c in cfgs]
    opt = _StackedOptimizer(params, cfgs)
    n = len(data)
    bs = min(cfgs[0].batch_size, n)
    steps = batches_per_epoch(n, bs)
    epochs = cfgs[0].epochs
    lrs = _lr_schedules(cfgs, epochs * steps).to(device)
    points = set(report_points(steps, cfgs[0].reports_per_epoch))
    histories: list[list[tuple[int, float]]] = [[] for _ in range(K)]
    stopped: list[Exception | None] = [None] * K
    train_acc = [0.0] * K
    eval_seconds, step, it = 0.0, 0, 0
    for epoch in range(epochs):
        perms = [torch.randperm(n, device=device, generator=g) for g in gens]
        correct = torch.zeros(K, dtype=torch.long, device=device)
        loss_sum = torch.zeros(K, device=device)
        for b in range(steps):
            if deadline is not None and time.time() > deadline:
                raise TimeUp(f"time limit reached at epoch {epoch + 1}, batch {b + 1}/{steps}")
            xs, ys = [], []
            for k in range(K):
                idx = perms[k][b * bs:(b + 1) * bs]
                x = data.images[idx]
                if cfgs[k].augment != "none":
                    x = augment(x, cfgs[k].augment, gens[k])
                xs.append(x)
                ys.append(data.labels[idx])
            x, y = torch.stack(xs), torch.stack(ys)
            grads, (loss, out) = grad_fn(params, buffers, x, y)
            for name, p in params.items():
                p.grad = grads[name]
            opt.step(lrs[it])
            it += 1
            correct += (out.argmax(-1) == y).sum(1)
            loss_sum += loss.detach()
            if b in points:
                bad = ~torch.isfinite(loss_sum)
                for k in range(K):
                    if bad[k] and stopped[k] is None:
                        stopped[k] = Diverged(step, float(loss_sum[k]))
                t0 = time.perf_counter()
                live = [k for k in range(K) if stopped[k] is None]
                vals = dict(zip(live, _evaluate_stacked(spec, params, buffers, splits.val, live)))
                eval_seconds += time.perf_counter() - t0
                for k in range(K):
                    if stopped[k] is not None:
                        continue
                    histories[k].append((step, vals[k]))
                    if on_report and on_report[k]:
                        try:
                            on_report[k](step, vals[k])
                        except Exception as e:  # a pruned candidate: stop reporting it
                            stopped[k] = e
                step += 1
                if all(s is not None for s in stopped):
                    return list(stopped)
        for k in range(K):
            train_acc[k] = 100.0 * correct[k].item() / n
    test: list[float | None] = [None] * K
    if evaluate_test:
        t0 = time.perf_counter()
        live = [k for k in range(K) if stopped[k] is None]
        test = [None] * K
        for k, acc in zip(live, _evaluate_stacked(spec, params, buffers, splits.test, live)):
            test[k] = acc
        eval_seconds += time.perf_counter() - t0
    seconds = time.perf_counter() - start
    train_seconds = max(seconds - eval_seconds, 1e-9)
    results: list[TrainResult | Exception] = []
    for k in range(K):
        if stopped[k] is not None:
            results.append(stopped[k])
            continue
        model = _unstack(spec, params, buffers, k, device) if keep_models else None
        hist = histories[k]
        results.append(TrainResult(
            n_params=module_params(models[k]), train_accuracy=train_acc[k],
            val_accuracy=hist[-1][1] if hist else math.nan, test_accuracy=test[k],
            seconds=seconds, train_seconds=train_seconds,
            images_per_second=epochs * n / train_seconds, history=hist, model=model))
    return results


def _unstack(spec: ArchSpec, params, buffers, k: int, device) -> torch.nn.Module:
    model = build_model(spec).to(device)
    model.load_state_dict({**{n: p[k].detach() for n, p in params.items()},
                           **{n: b[k] for n, b in buffers.items()}})
    return model.eval()


def _evaluate_stacked(spec: ArchSpec, params, buffers, split, which: list[int]) -> list[float]:
    # Evaluating each candidate with a plain module keeps accuracies exactly what an exported
    # model reproduces; evaluation is a small part of the time.
    return [evaluate(_unstack(spec, params, buffers, k, split.images.device), split,
                     eval_batch(spec))
            for k in which]
