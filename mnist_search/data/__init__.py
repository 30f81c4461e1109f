"""The datasets (``datasets``: MNIST and Fashion-MNIST from verified sources, or a user's own
folder of IDX files), the held-out validation split on the device (``dataset``), and batched
augmentation on the device (``augment``)."""

from mnist_search.lazy import exports

_API = {
    "DATASETS": "datasets",
    "DataError": "idx",
    "Dataset": "dataset",
    "Split": "dataset",
    "Splits": "dataset",
    "load_data": "datasets",
    "load_mnist": "mnist",
    "make_splits": "dataset",
    "augment": "augment",
}
__all__ = sorted(_API)
__getattr__ = exports(__name__, _API)
