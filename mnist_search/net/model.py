"""Build a PyTorch module from an ArchSpec. The module's parameter count equals count_params."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mnist_search.net.spec import (
    LEAKY_SLOPE,
    ArchSpec,
    ConvLayer,
    LayerShape,
    conv_shapes,
    feature_count,
)


def activation(name: str) -> nn.Module:
    return nn.LeakyReLU(LEAKY_SLOPE, inplace=True) if name == "leaky" else nn.ReLU(inplace=True)


class Block(nn.Module):
    """conv (or depthwise + pointwise, or k×1 → BN → ReLU → 1×k) → BN → (+ input) → ReLU,
    ``repeat`` times with the same convs and BatchNorms of their own each time (the activations
    differ from one use to the next, so one set of statistics would fit none of them) → pool →
    dropout (``drop``, the spec's ``conv_dropout``)."""

    def __init__(
        self,
        shape: LayerShape,
        layer: ConvLayer,
        batchnorm: bool,
        drop: float = 0.0,
        act: str = "relu",
    ):
        super().__init__()
        # A plain float, not a module: a fused (widened) block copies it as it is.
        self.slope = LEAKY_SLOPE if act == "leaky" else 0.0
        c_in, c_out, bias = shape.in_channels, layer.out_channels, not batchnorm
        k, p = layer.kernel, layer.padding
        self.conv: nn.Module
        # The k×1 half of a factorized block, and its BatchNorm per use.
        self.first: nn.Module | None = None
        self.mid = nn.ModuleList()
        if layer.kind == "fact":
            self.first = nn.Conv2d(c_in, c_out, (k, 1), padding=(p, 0), bias=bias)
            self.mid.extend(
                nn.BatchNorm2d(c_out) if batchnorm else nn.Identity() for _ in range(layer.repeat)
            )
            self.conv = nn.Conv2d(c_out, c_out, (1, k), padding=(0, p), bias=bias)
        elif layer.kind == "sep":
            self.conv = nn.Sequential(
                nn.Conv2d(c_in, c_in, layer.kernel, padding=layer.padding, groups=c_in, bias=False),
                nn.Conv2d(c_in, c_out, 1, bias=bias),
            )
        else:
            self.conv = nn.Conv2d(c_in, c_out, layer.kernel, padding=layer.padding, bias=bias)
        self.bn = nn.BatchNorm2d(c_out) if batchnorm else nn.Identity()
        self.again = nn.ModuleList(
            nn.BatchNorm2d(c_out) if batchnorm else nn.Identity() for _ in range(layer.repeat - 1)
        )
        self.residual, self.pool = layer.residual, layer.pool
        self.drop = nn.Dropout(drop) if drop else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for use, bn in enumerate((self.bn, *self.again)):
            h = x if self.first is None else self._act(self.mid[use](self.first(x)))
            y = bn(self.conv(h))
            if self.residual:
                y = y + x
            x = self._act(y)
        return self.drop(F.max_pool2d(x, 2) if self.pool else x)

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, self.slope) if self.slope else F.relu(x)


class Net(nn.Module):
    def __init__(self, spec: ArchSpec):
        super().__init__()
        self.spec = spec
        plain = all(l.kind == "conv" and not l.residual and l.repeat == 1 for l in spec.convs)
        blocks: list[nn.Module] = []
        for shape, layer in zip(conv_shapes(spec), spec.convs):
            if not plain:
                blocks.append(
                    Block(shape, layer, spec.batchnorm, spec.conv_dropout, spec.activation)
                )
                continue
            # Plain stacks keep the flat Conv/BN/ReLU/Pool layout their stored weights use.
            blocks.append(
                nn.Conv2d(
                    shape.in_channels,
                    layer.out_channels,
                    layer.kernel,
                    padding=layer.padding,
                    bias=not spec.batchnorm,
                )
            )
            if spec.batchnorm:
                blocks.append(nn.BatchNorm2d(layer.out_channels))
            blocks.append(activation(spec.activation))
            if layer.pool:
                blocks.append(nn.MaxPool2d(2))
            if spec.conv_dropout:  # only then, so stored plain nets keep their layer indices
                blocks.append(nn.Dropout(spec.conv_dropout))
        if spec.head == "gap":
            blocks.append(nn.AdaptiveAvgPool2d(1))
        blocks.append(nn.Flatten())
        self.features = nn.Sequential(*blocks)

        head: list[nn.Module] = []
        width = feature_count(spec)
        for h in spec.hidden:
            if spec.dropout:
                head.append(nn.Dropout(spec.dropout))
            head += [nn.Linear(width, h), activation(spec.activation)]
            width = h
        if spec.dropout:
            head.append(nn.Dropout(spec.dropout))
        head.append(nn.Linear(width, spec.num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.classifier(self.features(x)), dim=1)


def build_model(spec: ArchSpec) -> Net:
    return Net(spec)


def module_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
