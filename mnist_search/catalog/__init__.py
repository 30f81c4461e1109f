"""The nets known before any search, as data: the nets the product ships (``found/``, the warm
start's), the write-up's six experiments (``experiments``) and the published small nets the
frontier is compared with (``published``). The search, training, replay and the frontier read
them from here; nothing here trains or searches."""

from .experiments import (
    DOCUMENTED_PROTOCOL,
    PROTOCOL_NAME,
    Experiment,
    documented_experiments,
    get_experiment,
)
from .published import PUBLISHED, PublishedNet, epoch_cap

__all__ = [
    "DOCUMENTED_PROTOCOL",
    "PROTOCOL_NAME",
    "PUBLISHED",
    "Experiment",
    "PublishedNet",
    "documented_experiments",
    "epoch_cap",
    "get_experiment",
]
