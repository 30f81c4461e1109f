"""A net's shape as data and its exact parameter count (``spec``), and the PyTorch module built
from it (``model``): the budget is checked on the spec, before any module exists."""

from mnist_search.lazy import exports

_API = {
    "ArchSpec": "spec",
    "ConvLayer": "spec",
    "SpecError": "spec",
    "count_params": "spec",
    "describe": "spec",
    "build_model": "model",
    "module_params": "model",
}
__all__ = sorted(_API)
__getattr__ = exports(__name__, _API)
