"""Where and how fast candidates train, apart from what they learn: the device, the data folder,
the speed switches and how many candidates train as one fused net. One part, checked once, that
``optimize``, ``frontier``, ``replay`` and ``train`` all take."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mnist_search.errors import ConfigError, check_range
from mnist_search.training.loop import Speed


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
    data_dir: str | Path | None = None  # None: $MNIST_SEARCH_DATA, the cache, then download
    amp: bool | None = None  # bf16 autocast; None: on for CUDA
    channels_last: bool | None = None  # None: on for CUDA
    compile: bool = False  # torch.compile each model
    parallel: int = 1  # candidates of one net trained at once, as one fused net

    def check(self) -> None:
        """Raise ConfigError for the first bad setting; touches nothing (the device and the
        data are checked where they are opened, before any work)."""
        check_range("parallel", self.parallel)
        if self.compile and self.parallel > 1:
            raise ConfigError(
                "compile",
                f"True with parallel={self.parallel}: fused training of several candidates "
                "does not compile; drop one of the two",
            )

    @property
    def speed(self) -> Speed:
        return Speed(amp=self.amp, channels_last=self.channels_last, compile=self.compile)
