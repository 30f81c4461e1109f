"""Fashion-MNIST (Zalando's drop-in replacement for MNIST: 10 kinds of clothing, the same
sizes and format): its published checksums and where it comes from.

Sources, in order: ``--data-dir``; the cache; a system copy (Debian's ``dataset-fashion-mnist``
installs the files in /usr/share/datasets/fashion-mnist); torchvision's download. Debian
recompresses the ``.gz`` files, so only the uncompressed files' MD5 sums are compared.
"""

from __future__ import annotations

from pathlib import Path

from mnist_search.data.dataset import Dataset
from mnist_search.data.known import Known, load_known, torchvision_fetch

MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
SYSTEM_COPY = Path("/usr/share/datasets/fashion-mnist")
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


FASHION = Known(
    name="fashion-mnist",
    title="Fashion-MNIST",
    md5=MD5,
    subfolders=("FashionMNIST/raw", "raw"),
    system=(SYSTEM_COPY,),
    downloads=(("torchvision download", torchvision_fetch("FashionMNIST")),),
)


def load_fashion(
    data_dir: str | Path | None = None, cache_dir: Path | None = None, download: bool = True
) -> Dataset:
    """Verified Fashion-MNIST from the first source that has it."""
    return load_known(FASHION, data_dir, cache_dir, download)
