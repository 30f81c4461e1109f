"""K candidates of one architecture as one net K times as wide: the wide layers, the optimizer
that steps each candidate with its own settings, the weight average, and evaluation of all K in
one pass. ``fused.py`` trains with them.

Convolutions are grouped K ways (K × a layer's own groups, so depthwise-separable layers fuse
too), BatchNorm normalises K×C channels (per channel, so exactly per candidate), residual
additions, pools and ReLUs act channel by channel, and linear layers are batched matrix
products.
"""

from __future__ import annotations

import copy
import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from mnist_search.data.dataset import Split
from mnist_search.net.model import Net, build_model
from mnist_search.net.spec import ArchSpec
from mnist_search.training.loop import TrainConfig, ema_decay, make_schedule


class FusedError(ValueError):
    """Candidates that cannot train as one wide net (the reason in one line)."""


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


_CHANNELWISE = (nn.ReLU, nn.LeakyReLU, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Dropout, nn.Identity)


def by_candidate(t: torch.Tensor, k: int) -> torch.Tensor:
    """``t`` ([K·n, ...]) as [K, n, ...], a view in any memory format: only the first dimension is
    split. (A flat [K, -1] view fails on channels_last weights, CUDA's default here.)"""
    return t.view(k, t.shape[0] // k, *t.shape[1:])


def per_row(column: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-candidate column ([K] or [K, 1]) shaped to broadcast over ``like`` ([K, ...])."""
    return column.reshape(-1, *[1] * (like.dim() - 1))


def _cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach() for t in tensors]).clone()


def _wide_conv(mods: list[nn.Conv2d], k: int) -> nn.Conv2d:
    m = mods[0]
    w = nn.Conv2d(
        k * m.in_channels,
        k * m.out_channels,
        cast("tuple[int, int]", m.kernel_size),
        cast("tuple[int, int]", m.stride),
        cast("str | tuple[int, int]", m.padding),
        groups=k * m.groups,
        bias=m.bias is not None,
        device=m.weight.device,
    )
    w.weight = nn.Parameter(_cat([x.weight for x in mods]))
    if m.bias is not None:
        w.bias = nn.Parameter(_cat([_tensor(x.bias) for x in mods]))
    return w


def _wide_batchnorm(mods: list[nn.BatchNorm2d], k: int) -> nn.BatchNorm2d:
    m = mods[0]
    w = nn.BatchNorm2d(k * m.num_features, m.eps, m.momentum, device=m.weight.device)
    w.weight = nn.Parameter(_cat([x.weight for x in mods]))
    w.bias = nn.Parameter(_cat([x.bias for x in mods]))
    w.running_mean = _cat([_tensor(x.running_mean) for x in mods])
    w.running_var = _cat([_tensor(x.running_var) for x in mods])
    w.num_batches_tracked = _tensor(m.num_batches_tracked).clone()
    return w


def _tensor(t: torch.Tensor | None) -> torch.Tensor:
    """A tensor the layer has by construction (a bias or a running statistic it was built with)."""
    assert t is not None
    return t


def widen(mods: list[nn.Module], k: int) -> nn.Module:
    """One module doing the work of ``mods`` (K same-shaped modules) side by side."""
    m = mods[0]
    if isinstance(m, nn.Conv2d):
        return _wide_conv(cast("list[nn.Conv2d]", mods), k)
    if isinstance(m, nn.BatchNorm2d):
        return _wide_batchnorm(cast("list[nn.BatchNorm2d]", mods), k)
    if isinstance(m, nn.Linear):
        linears = cast("list[nn.Linear]", mods)
        bias = torch.stack([x.bias.detach() for x in linears]) if m.bias is not None else None
        return GroupedLinear(torch.stack([x.weight.detach() for x in linears]), bias)
    if isinstance(m, nn.Flatten):
        return CandidateFlatten(k)
    if isinstance(m, _CHANNELWISE):
        return copy.deepcopy(m)
    if isinstance(m, nn.Module) and type(m).__module__ in (
        nn.Sequential.__module__,
        Net.__module__,
    ):
        # A container (Sequential, a ModuleList, a residual or repeated Block): the same module
        # around wide children.
        if any(True for _ in m.parameters(recurse=False)):
            raise FusedError(f"cannot fuse {type(m).__name__}: it holds parameters directly")
        w = copy.copy(m)
        w._parameters, w._buffers = {}, {}
        w._modules = {
            name: widen([cast(nn.Module, x._modules[name]) for x in mods], k) for name in m._modules
        }
        return w
    raise FusedError(f"cannot fuse a {type(m).__name__} layer")


class WideNet(nn.Module):
    """K candidate nets of one spec as one net; input [B, K, 28, 28], output [B, K, 10]
    log-probabilities. Every tensor in its state dict holds the candidates' tensors in order
    along the first dimension (``narrow`` takes candidate k's back out)."""

    def __init__(self, models: list[Net]):
        super().__init__()
        self.k = len(models)
        self.features = widen([m.features for m in models], self.k)
        self.classifier = widen([m.classifier for m in models], self.k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.classifier(self.features(x)), dim=-1)

    @torch.no_grad()
    def narrow(self, k: int, into: Net) -> Net:
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
        return [(p, by_candidate(p, self.k)) for p in self.parameters()]


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
        # Each row's settings shaped once to broadcast over it: the step runs every batch.
        self.settings = [
            tuple(per_row(c, rows) for c in (self.wd, self.mom, self.nesterov))
            for _, rows in self.rows
        ]
        self.ranks = sorted({rows.dim() for _, rows in self.rows})

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
        lr_by_rank = {d: lr.reshape(-1, *[1] * (d - 1)) for d in self.ranks}
        for (p, rows), st, (wd, mom, nesterov) in zip(self.rows, self.state, self.settings):
            g = _tensor(p.grad).view_as(rows)  # every parameter has one after backward
            lr_ = lr_by_rank[rows.dim()]
            if self.kind == "sgd":
                g = g + wd * rows
                buf = st.get("buf")
                # torch.optim.SGD: the first step's buffer is the gradient itself.
                buf = g.clone() if buf is None else buf.mul_(mom).add_(g)
                st["buf"] = buf
                # Nesterov: g + momentum·buf; plain momentum: buf.
                d = buf + nesterov * (g + mom * buf - buf)
                rows.sub_(lr_ * d)
                continue
            if self.kind == "adam":
                g = g + wd * rows
            else:  # adamw: decoupled weight decay
                rows.mul_(1 - lr_ * wd)
            m = st.setdefault("m", torch.zeros_like(rows)).lerp_(g, 0.1)
            v = st.setdefault("v", torch.zeros_like(rows)).mul_(0.999).addcmul_(g, g, value=0.001)
            c1, c2 = 1 - 0.9**self.t, 1 - 0.999**self.t
            rows.sub_(lr_ / c1 * m / (v.sqrt() / math.sqrt(c2) + 1e-8))


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
                rows = by_candidate(avg, k)
                rows.lerp_(by_candidate(live, k), per_row(w, rows))
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
