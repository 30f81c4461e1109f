"""Build a PyTorch module from an ArchSpec. The module's parameter count equals count_params."""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .spec import ArchSpec, conv_shapes, feature_count


class Net(nn.Module):
    def __init__(self, spec: ArchSpec):
        super().__init__()
        self.spec = spec
        blocks: list[nn.Module] = []
        for shape, layer in zip(conv_shapes(spec), spec.convs):
            blocks.append(nn.Conv2d(shape.in_channels, layer.out_channels, layer.kernel,
                                    padding=layer.padding, bias=not spec.batchnorm))
            if spec.batchnorm:
                blocks.append(nn.BatchNorm2d(layer.out_channels))
            blocks.append(nn.ReLU(inplace=True))
            if layer.pool:
                blocks.append(nn.MaxPool2d(2))
        if spec.head == "gap":
            blocks.append(nn.AdaptiveAvgPool2d(1))
        blocks.append(nn.Flatten())
        self.features = nn.Sequential(*blocks)

        head: list[nn.Module] = []
        width = feature_count(spec)
        for h in spec.hidden:
            if spec.dropout:
                head.append(nn.Dropout(spec.dropout))
            head += [nn.Linear(width, h), nn.ReLU(inplace=True)]
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
