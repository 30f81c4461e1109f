"""Batched augmentation on the training device: small random rotation and shift, no per-sample
Python. Labels are untouched (the same batch index keeps its label)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# strength -> (max rotation in degrees, max shift in pixels)
STRENGTHS = {"none": (0.0, 0.0), "small": (10.0, 2.0), "medium": (15.0, 3.0)}


def random_affine(
    images: torch.Tensor,
    degrees: float,
    shift: float,
    generator: torch.Generator | None = None,
    fill: float = 0.0,
) -> torch.Tensor:
    """Rotate each image by U(-degrees, degrees) and shift it by U(-shift, shift) pixels; what
    comes into view is ``fill`` (the normalised black: ``Splits.background``)."""
    if degrees == 0 and shift == 0:
        return images
    n, _, h, w = images.shape
    dev = images.device
    angle = (torch.rand(n, device=dev, generator=generator) * 2 - 1) * math.radians(degrees)
    # affine_grid works in [-1, 1] coordinates: a shift of s pixels is 2*s/size there.
    tx = (torch.rand(n, device=dev, generator=generator) * 2 - 1) * (2 * shift / w)
    ty = (torch.rand(n, device=dev, generator=generator) * 2 - 1) * (2 * shift / h)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    # Pad with the normalised black value, not zero: zero is grey after normalisation.
    bg = fill
    out = F.grid_sample(
        images - bg, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return out + bg


def augment(
    images: torch.Tensor,
    strength: str,
    generator: torch.Generator | None = None,
    fill: float = 0.0,
) -> torch.Tensor:
    if strength not in STRENGTHS:
        raise ValueError(f"augment={strength!r}; valid: {', '.join(STRENGTHS)}")
    degrees, shift = STRENGTHS[strength]
    return random_affine(images, degrees, shift, generator, fill)
