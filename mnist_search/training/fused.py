"""Train K candidates of one architecture at once, as one net K times as wide.

Seed replicas and variants of one sampled net (other learning rate, weight decay, schedule, label
smoothing, augmentation) share every shape. Laid side by side along the channel axis they form a
single net whose convolutions are grouped K ways (K × a layer's own groups, so depthwise-separable
layers fuse too), whose BatchNorm normalises K×C channels (per channel, so exactly per candidate),
whose residual additions, pools and ReLUs act channel by channel, and whose linear layers are
batched matrix products. One step of that net is one step of every candidate: for tiny nets this
turns K small kernels per layer into one larger one, which is what keeps a GPU busy.

Each candidate keeps its own initialisation, batch order, augmentation draws, learning-rate
schedule, weight decay, momentum and label smoothing, so a fused run follows the same path as K
separate ``train`` calls up to floating-point rounding. Dropout is the exception: its masks come
from one random stream, so they differ from a separate run's (same distribution). No Optuna here.
"""

from __future__ import annotations

import math

import torch

from mnist_search.data.augment import STRENGTHS, random_affine
from mnist_search.data.dataset import Splits
from mnist_search.net.model import build_model, module_params
from mnist_search.net.spec import ArchSpec
from mnist_search.training.loop import (
    Diverged,
    ReportFn,
    Speed,
    TrainConfig,
    TrainResult,
    apply_speed,
    eval_batch,
    evaluate,
)
from mnist_search.training.memory import one_heap_per_training
from mnist_search.training.steps import Steps
from mnist_search.training.wide import (
    FusedError,
    StackedOptimizer,
    WideAverage,
    WideNet,
    evaluate_wide,
    lr_table,
    widen,
)

# What one fused step shares between its candidates; everything else may differ.
SHARED = ("epochs", "batch_size", "optimizer", "reports_per_epoch")


def check_fusable(spec: ArchSpec, cfgs: list[TrainConfig]) -> None:
    """Raise FusedError, with a one-line reason, when these candidates cannot train as one."""
    if not cfgs:
        raise FusedError("no candidates to train")
    if any(c.distill for c in cfgs):  # a teacher's targets are one training's, not K's
        raise FusedError("a distilled training trains alone")
    for name in SHARED:
        values = {getattr(c, name) for c in cfgs}
        if len(values) > 1:
            raise FusedError(f"fused candidates must share {name}; got {sorted(map(str, values))}")
    widen([build_model(spec).to("meta")], 1)  # every layer kind has a wide form


def _augment_each(
    xs: list[torch.Tensor], cfgs: list[TrainConfig], gens: list[torch.Generator], fill: float
) -> torch.Tensor:
    """Each candidate's batch, augmented with its own generator's draws, as [B, K, h, w]."""
    out = []
    for x, c, g in zip(xs, cfgs, gens):
        degrees, shift = STRENGTHS[c.augment]
        out.append(random_affine(x, degrees, shift, g, fill))
    return torch.cat(out, dim=1)


@one_heap_per_training
def train_fused(
    spec: ArchSpec,
    cfgs: list[TrainConfig],
    splits: Splits,
    *,
    on_report: list[ReportFn | None] | None = None,
    evaluate_test: bool = True,
    keep_models: bool = False,
    deadline: float | None = None,
    speed: Speed = Speed(),
) -> list[TrainResult | Exception]:
    """Train ``len(cfgs)`` candidates of ``spec`` at once.

    Returns, per candidate, its TrainResult, or the exception that stopped it: whatever its
    ``on_report[k](step, val)`` raised (a pruner), or Diverged. A stopped candidate leaves the
    wide net at that report (its weights, optimizer state and average are cut out), so the others
    go on at the cost of their own number. TimeUp stops all of them.
    """
    check_fusable(spec, cfgs)
    data = splits.train
    device = data.images.device
    first = cfgs[0]  # what they share (SHARED)
    run = Steps(
        len(data),
        first.batch_size,
        first.epochs,
        first.reports_per_epoch,
        splits.val,
        device,
        deadline,
    )
    sp = speed.resolve(device, first.epochs)
    K = len(cfgs)
    models = []
    for c in cfgs:
        torch.manual_seed(c.seed)  # the same initialisation as a separate run with this seed
        models.append(build_model(spec).to(device))
    net, fmt, autocast = apply_speed(WideNet(models).to(device), sp, device)
    # Position j of the wide net is candidate alive[j]; candidates that stop (pruned, diverged)
    # are dropped from it at the report where they stop, so they cost nothing after.
    alive = list(range(K))
    live_cfgs = list(cfgs)
    gens = [torch.Generator(device=device).manual_seed(c.seed) for c in cfgs]
    opt = StackedOptimizer(net, cfgs)
    average = WideAverage(net, cfgs) if any(c.ema for c in cfgs) else None
    judged = average.net if average is not None else net  # what is evaluated and kept
    lrs = lr_table(cfgs, run.total).to(device)
    smoothing = torch.tensor([c.label_smoothing for c in cfgs], device=device)
    histories: list[list[tuple[int, float]]] = [[] for _ in range(K)]
    stopped: list[Exception | None] = [None] * K
    train_acc = [0.0] * K
    it = 0
    for epoch in range(first.epochs):
        net.train()
        perms = [torch.randperm(run.n, device=device, generator=g) for g in gens]
        correct = torch.zeros(len(alive), dtype=torch.long, device=device)
        loss_sum = torch.zeros(len(alive), device=device)
        for b, part in run.batches(epoch):
            idx = [p[part] for p in perms]
            x = _augment_each([data.images[i] for i in idx], live_cfgs, gens, splits.background)
            y = torch.stack([data.labels[i] for i in idx], 1)  # [B, K]
            with autocast:
                out = net(x.contiguous(memory_format=fmt)).float()
            # Each candidate's cross-entropy with its own label smoothing, summed: the candidates
            # share no weights, so each gets exactly the gradient of its own loss.
            nll = -out.gather(-1, y.unsqueeze(-1)).squeeze(-1).mean(0)
            loss = (1 - smoothing) * nll - smoothing * out.mean(-1).mean(0)
            net.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step(lrs[it])
            if average is not None:
                average.update()
            it += 1
            correct += (out.detach().argmax(-1) == y).sum(0)
            loss_sum += loss.detach()
            judge = run.judge_on(b)
            if judge is None:
                continue
            bad = (~torch.isfinite(loss_sum)).tolist()
            for j, k in enumerate(alive):
                if bad[j]:
                    stopped[k] = Diverged(run.step, float(loss_sum[j]))
            with run.evaluating():
                vals = evaluate_wide(judged, judge, max(1, eval_batch(spec) // len(alive)))
            for j, k in enumerate(alive):
                if stopped[k] is not None:
                    continue
                histories[k].append((run.step, vals[j]))
                report = on_report[k] if on_report else None
                if report is not None:
                    try:
                        report(run.step, vals[j])
                    except Exception as e:  # a pruned candidate: stop reporting it
                        stopped[k] = e
            run.step += 1
            keep = [j for j, k in enumerate(alive) if stopped[k] is None]
            if not keep:  # every candidate stopped, each with its reason
                reasons = [e for e in stopped if e is not None]
                assert len(reasons) == K
                return list(reasons)
            if len(keep) < len(alive):
                alive = [alive[j] for j in keep]
                live_cfgs = [cfgs[k] for k in alive]
                net = net.select(keep, spec)
                opt = opt.select(keep, net, live_cfgs)
                if average is not None:
                    average = average.select(keep, net, spec)
                judged = average.net if average is not None else net
                gens, perms = [gens[j] for j in keep], [perms[j] for j in keep]
                rows = torch.tensor(keep, device=device)
                lrs, smoothing = lrs.index_select(1, rows), smoothing.index_select(0, rows)
                correct, loss_sum = correct.index_select(0, rows), loss_sum.index_select(0, rows)
        for j, k in enumerate(alive):
            train_acc[k] = 100.0 * correct[j].item() / run.n
    # Test accuracy on each candidate's own plain module: exactly what its export reproduces.
    for j, k in enumerate(alive):
        judged.narrow(j, models[k]).eval()
    test: list[float | None] = [None] * K
    if evaluate_test:
        with run.evaluating():
            for k in range(K):
                if stopped[k] is None:
                    test[k] = evaluate(models[k], splits.test, eval_batch(spec))
    t = run.timing()
    results: list[TrainResult | Exception] = []
    for k in range(K):
        why = stopped[k]
        if why is not None:
            results.append(why)
            continue
        hist = histories[k]
        results.append(
            TrainResult(
                n_params=module_params(models[k]),
                train_accuracy=train_acc[k],
                val_accuracy=hist[-1][1] if hist else math.nan,
                test_accuracy=test[k],
                seconds=t.seconds,
                train_seconds=t.train_seconds,
                images_per_second=t.images_per_second,
                history=hist,
                model=models[k] if keep_models else None,
            )
        )
    return results
