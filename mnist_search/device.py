"""Pick the training device from a user's word: auto, cpu, cuda, cuda:N or mps."""

from __future__ import annotations

import re

import torch

from mnist_search.errors import UsageError


class DeviceError(UsageError):
    """A device name that is unknown or not present here."""


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps' is not available here; valid: auto, cpu" + _cuda_hint())
        return torch.device("mps")
    m = re.fullmatch(r"cuda(?::(\d+))?", name)
    if m:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(m.group(1) or 0)
        if index >= count:
            have = "no CUDA device" if count == 0 else f"{count} CUDA device(s)"
            raise DeviceError(
                f"device {name!r} is not there ({have}); valid: auto, cpu" + _cuda_hint()
            )
        return torch.device("cuda", index)
    raise DeviceError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N, mps")


def _cuda_hint() -> str:
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return ""
    return ", cuda" + "".join(f", cuda:{i}" for i in range(count))
