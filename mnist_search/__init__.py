"""mnist-search: find the best small CNN for MNIST under a hard parameter budget."""

from .spec import ArchSpec, ConvLayer, count_params, describe

__all__ = ["ArchSpec", "ConvLayer", "count_params", "describe"]
__version__ = "0.1.0"
