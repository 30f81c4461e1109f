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

import copy
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from mnist_search.data.augment import STRENGTHS, random_affine
from mnist_search.data.mnist import Split, Splits
from mnist_search.net.model import Net, build_model, module_params
from mnist_search.net.spec import ArchSpec
from mnist_search.training.loop import (
    Diverged,
    ReportFn,
    Speed,
    TimeUp,
    TrainConfig,
    TrainResult,
    apply_speed,
    batches_per_epoch,
    ema_decay,
    eval_batch,
    evaluate,
    make_schedule,
    report_points,
)
from mnist_search.training.memory import one_heap_per_training

# What one fused step shares between its candidates; everything else may differ.
SHARED = ("epochs", "batch_size", "optimizer", "reports_per_epoch")


class FusedError(ValueError):
    pass


def check_fusable(spec: ArchSpec, cfgs: list[TrainConfig]) -> None:
    """Raise FusedError, with a one-line reason, when these candidates cannot train as one."""
    if not cfgs:
        raise FusedError("no candidates to train")
    for name in SHARED:
        values = {getattr(c, name) for c in cfgs}
        if len(values) > 1:
            raise FusedError(f"fused candidates must share {name}; got {sorted(map(str, values))}")
    _widen([build_model(spec).to("meta")], 1)  # every layer kind has a wide form


class GroupedLinear(nn.Module):
    """K independent linear layers on input [B, K, in]: weight [K, out, in], bias [K, out]."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias) if bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.einsum("bki,koi->bko", x, self.weight)
        return y + self.bias if self.bias is not None else y


class CandidateFlatten(nn.Module):
    """[B, K·C, h, w] → [B, K, C·h·w]: each candidate's features in its own Flatten order."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], self.k, -1)


_CHANNELWISE = (nn.ReLU, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Dropout, nn.Identity)


def _cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach() for t in tensors]).clone()


def _widen(mods: list[nn.Module], k: int) -> nn.Module:
    """One module doing the work of ``mods`` (K same-shaped modules) side by side."""
    m = mods[0]
    if isinstance(m, nn.Conv2d):
        w = nn.Conv2d(
            k * m.in_channels,
            k * m.out_channels,
            m.kernel_size,
            m.stride,
            m.padding,
            groups=k * m.groups,
            bias=m.bias is not None,
            device=m.weight.device,
        )
        w.weight = nn.Parameter(_cat([x.weight for x in mods]))
        if m.bias is not None:
            w.bias = nn.Parameter(_cat([x.bias for x in mods]))
        return w
    if isinstance(m, nn.BatchNorm2d):
        w = nn.BatchNorm2d(k * m.num_features, m.eps, m.momentum, device=m.weight.device)
        w.weight = nn.Parameter(_cat([x.weight for x in mods]))
        w.bias = nn.Parameter(_cat([x.bias for x in mods]))
        w.running_mean = _cat([x.running_mean for x in mods])
        w.running_var = _cat([x.running_var for x in mods])
        w.num_batches_tracked = m.num_batches_tracked.clone()
        return w
    if isinstance(m, nn.Linear):
        bias = torch.stack([x.bias.detach() for x in mods]) if m.bias is not None else None
        return GroupedLinear(torch.stack([x.weight.detach() for x in mods]), bias)
    if isinstance(m, nn.Flatten):
        return CandidateFlatten(k)
    if isinstance(m, _CHANNELWISE):
        return copy.deepcopy(m)
    if isinstance(m, nn.Module) and type(m).__module__ in (
        nn.Sequential.__module__,
        Net.__module__,
    ):
        # A container (Sequential, a residual Block): the same module around wide children.
        if any(True for _ in m.parameters(recurse=False)):
            raise FusedError(f"cannot fuse {type(m).__name__}: it holds parameters directly")
        w = copy.copy(m)
        w._parameters, w._buffers = {}, {}
        w._modules = {name: _widen([x._modules[name] for x in mods], k) for name in m._modules}
        return w
    raise FusedError(f"cannot fuse a {type(m).__name__} layer")


class WideNet(nn.Module):
    """K candidate nets of one spec as one net; input [B, K, 28, 28], output [B, K, 10]
    log-probabilities. Every tensor in its state dict holds the candidates' tensors in order
    along the first dimension (``narrow`` takes candidate k's back out)."""

    def __init__(self, models: list[Net]):
        super().__init__()
        self.k = len(models)
        self.features = _widen([m.features for m in models], self.k)
        self.classifier = _widen([m.classifier for m in models], self.k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.classifier(self.features(x)), dim=-1)

    @torch.no_grad()
    def narrow(self, k: int, into: nn.Module) -> nn.Module:
        """Copy candidate k's weights and BatchNorm statistics into ``into`` (a Net)."""
        wide = self.state_dict()
        state = {
            name: (wide[name].clone() if t.dim() == 0 else wide[name].view(self.k, *t.shape)[k])
            for name, t in into.state_dict().items()
        }
        into.load_state_dict(state)
        return into

    def select(self, keep: list[int], spec: ArchSpec) -> WideNet:
        """A wide net of only the candidates at positions ``keep``, in that order."""
        device = next(self.parameters()).device
        wide = WideNet([self.narrow(j, build_model(spec).to(device)) for j in keep]).to(device)
        return wide.to(memory_format=torch.channels_last) if self.channels_last else wide

    @property
    def channels_last(self) -> bool:
        return any(
            p.dim() == 4
            and not p.is_contiguous()
            and p.is_contiguous(memory_format=torch.channels_last)
            for p in self.parameters()
        )

    def candidate_rows(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(parameter, the same parameter as [K, rest]) pairs for a per-candidate optimizer."""
        return [(p, p.view(self.k, -1)) for p in self.parameters()]


class StackedOptimizer:
    """SGD (momentum, Nesterov), Adam and AdamW as torch.optim defines them, with each candidate's
    own learning rate, weight decay and momentum applied to its rows of every wide parameter."""

    def __init__(self, net: WideNet, cfgs: list[TrainConfig]):
        self.kind = cfgs[0].optimizer
        self.rows = net.candidate_rows()
        dev = self.rows[0][0].device

        def column(values) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32, device=dev).view(-1, 1)

        self.mom = column([c.momentum for c in cfgs])
        self.wd = column([c.weight_decay for c in cfgs])
        self.nesterov = column([float(c.nesterov) for c in cfgs])
        self.state: list[dict[str, torch.Tensor]] = [{} for _ in self.rows]
        self.t = 0

    def select(self, keep: list[int], net: WideNet, cfgs: list[TrainConfig]) -> StackedOptimizer:
        """This optimizer for ``net``, the wide net of the candidates at positions ``keep``: their
        hyperparameters, momentum buffers and moment estimates carried over."""
        out = StackedOptimizer(net, cfgs)
        out.t = self.t
        rows = torch.tensor(keep, device=self.mom.device)
        for old, new in zip(self.state, out.state):
            for name, t in old.items():
                new[name] = t.index_select(0, rows)
        return out

    @torch.no_grad()
    def step(self, lr: torch.Tensor) -> None:
        """One step with learning rates ``lr`` [K]."""
        self.t += 1
        lr = lr.view(-1, 1)
        for (p, rows), st in zip(self.rows, self.state):
            g = p.grad.view_as(rows)
            if self.kind == "sgd":
                g = g + self.wd * rows
                buf = st.get("buf")
                # torch.optim.SGD: the first step's buffer is the gradient itself.
                buf = g.clone() if buf is None else buf.mul_(self.mom).add_(g)
                st["buf"] = buf
                # Nesterov: g + momentum·buf; plain momentum: buf.
                d = buf + self.nesterov * (g + self.mom * buf - buf)
                rows.sub_(lr * d)
                continue
            if self.kind == "adam":
                g = g + self.wd * rows
            else:  # adamw: decoupled weight decay
                rows.mul_(1 - lr * self.wd)
            m = st.setdefault("m", torch.zeros_like(rows)).lerp_(g, 0.1)
            v = st.setdefault("v", torch.zeros_like(rows)).mul_(0.999).addcmul_(g, g, value=0.001)
            c1, c2 = 1 - 0.9**self.t, 1 - 0.999**self.t
            rows.sub_(lr / c1 * m / (v.sqrt() / math.sqrt(c2) + 1e-8))


class WideAverage:
    """Each candidate's exponential moving average of its weights (``TrainConfig.ema``, with
    ``train.ema_decay``'s early ramp), kept in a wide net of its own; a candidate without one
    gets decay 0, so its "average" is its live weights."""

    def __init__(self, net: WideNet, cfgs: list[TrainConfig]):
        self.net = copy.deepcopy(net)
        self.steps = 0
        dev = next(net.parameters()).device
        self._decays = torch.tensor([[c.ema] for c in cfgs], device=dev)
        self._pairs = [
            (a, b) for a, b in zip(self.net.state_dict().values(), net.state_dict().values())
        ]

    def select(self, keep: list[int], live: WideNet, spec: ArchSpec) -> WideAverage:
        """The averages of the candidates at positions ``keep``, following ``live`` (the wide net
        of the same candidates) from now on."""
        out = WideAverage.__new__(WideAverage)
        out.net, out.steps = self.net.select(keep, spec), self.steps
        out._decays = self._decays[keep]
        out._pairs = [
            (a, b) for a, b in zip(out.net.state_dict().values(), live.state_dict().values())
        ]
        return out

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        # ema_decay for every candidate at once, on the device
        w = 1 - self._decays.clamp(max=ema_decay(1.0, self.steps))
        k = self.net.k
        for avg, live in self._pairs:
            if avg.is_floating_point() and avg.dim():
                avg.view(k, -1).lerp_(live.view(k, -1), w)
            else:
                avg.copy_(live)


def lr_table(cfgs: list[TrainConfig], total: int) -> torch.Tensor:
    """[steps, K] learning rates: what each candidate's own scheduler gives at each step."""
    out = torch.empty(total, len(cfgs))
    for k, c in enumerate(cfgs):
        dummy = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=c.lr)
        sched = make_schedule(dummy, c, total)
        for i in range(total):
            out[i, k] = dummy.param_groups[0]["lr"]
            if sched is not None:
                dummy.step()
                sched.step()
    return out


def _augment_each(
    xs: list[torch.Tensor], cfgs: list[TrainConfig], gens: list[torch.Generator]
) -> torch.Tensor:
    """Each candidate's batch, augmented with its own generator's draws, as [B, K, h, w]."""
    out = []
    for x, c, g in zip(xs, cfgs, gens):
        degrees, shift = STRENGTHS[c.augment]
        out.append(random_affine(x, degrees, shift, g))
    return torch.cat(out, dim=1)


@torch.inference_mode()
def evaluate_wide(net: WideNet, split: Split, batch: int) -> list[float]:
    """Each candidate's accuracy (%) on ``split``, all K in one pass per batch."""
    was_training = net.training
    net.eval()
    correct = torch.zeros(net.k, dtype=torch.long, device=split.labels.device)
    for i in range(0, len(split), batch):
        x = split.images[i : i + batch]
        out = net(x.expand(-1, net.k, -1, -1))
        correct += (out.argmax(-1) == split.labels[i : i + batch, None]).sum(0)
    net.train(was_training)
    return [100.0 * c / len(split) for c in correct.tolist()]


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
    start = time.perf_counter()
    data = splits.train
    device = data.images.device
    sp = speed.resolve(device, cfgs[0].epochs)
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
    n = len(data)
    bs = min(cfgs[0].batch_size, n)
    steps = batches_per_epoch(n, bs)
    epochs = cfgs[0].epochs
    lrs = lr_table(cfgs, epochs * steps).to(device)
    smoothing = torch.tensor([c.label_smoothing for c in cfgs], device=device)
    points = set(report_points(steps, cfgs[0].reports_per_epoch))
    histories: list[list[tuple[int, float]]] = [[] for _ in range(K)]
    stopped: list[Exception | None] = [None] * K
    train_acc = [0.0] * K
    eval_seconds, step, it = 0.0, 0, 0
    for epoch in range(epochs):
        net.train()
        perms = [torch.randperm(n, device=device, generator=g) for g in gens]
        correct = torch.zeros(len(alive), dtype=torch.long, device=device)
        loss_sum = torch.zeros(len(alive), device=device)
        for b in range(steps):
            if deadline is not None and time.time() > deadline:
                raise TimeUp(f"time limit reached at epoch {epoch + 1}, batch {b + 1}/{steps}")
            idx = [p[b * bs : (b + 1) * bs] for p in perms]
            x = _augment_each([data.images[i] for i in idx], live_cfgs, gens)
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
            if b not in points:
                continue
            bad = (~torch.isfinite(loss_sum)).tolist()
            for j, k in enumerate(alive):
                if bad[j]:
                    stopped[k] = Diverged(step, float(loss_sum[j]))
            t0 = time.perf_counter()
            vals = evaluate_wide(judged, splits.val, max(1, eval_batch(spec) // len(alive)))
            eval_seconds += time.perf_counter() - t0
            for j, k in enumerate(alive):
                if stopped[k] is not None:
                    continue
                histories[k].append((step, vals[j]))
                if on_report and on_report[k]:
                    try:
                        on_report[k](step, vals[j])
                    except Exception as e:  # a pruned candidate: stop reporting it
                        stopped[k] = e
            step += 1
            keep = [j for j, k in enumerate(alive) if stopped[k] is None]
            if not keep:
                return list(stopped)
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
            train_acc[k] = 100.0 * correct[j].item() / n
    # Test accuracy on each candidate's own plain module: exactly what its export reproduces.
    for j, k in enumerate(alive):
        judged.narrow(j, models[k]).eval()
    test: list[float | None] = [None] * K
    if evaluate_test:
        t0 = time.perf_counter()
        for k in range(K):
            if stopped[k] is None:
                test[k] = evaluate(models[k], splits.test, eval_batch(spec))
        eval_seconds += time.perf_counter() - t0
    seconds = time.perf_counter() - start
    train_seconds = max(seconds - eval_seconds, 1e-9)
    results: list[TrainResult | Exception] = []
    for k in range(K):
        if stopped[k] is not None:
            results.append(stopped[k])
            continue
        hist = histories[k]
        results.append(
            TrainResult(
                n_params=module_params(models[k]),
                train_accuracy=train_acc[k],
                val_accuracy=hist[-1][1] if hist else math.nan,
                test_accuracy=test[k],
                seconds=seconds,
                train_seconds=train_seconds,
                images_per_second=epochs * n / train_seconds,
                history=hist,
                model=models[k] if keep_models else None,
            )
        )
    return results
