"""The datasets beside MNIST: Fashion-MNIST from its verified sources, and a user's own IDX
folder, read at the byte level and refused in one line when anything in it is wrong."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mnist_search.cli.app import app
from mnist_search.data.dataset import make_splits
from mnist_search.data.datasets import check_dataset, load_data
from mnist_search.data.fashion import FASHION, SYSTEM_COPY, load_fashion
from mnist_search.data.idx import FILES, DataError, encode_idx
from mnist_search.data.mnist import MD5 as MNIST_MD5
from mnist_search.data.own import MAX_IMAGES, fingerprint, load_own
from mnist_search.testing import one_line_error

runner = CliRunner()
TRAIN_IMAGES, TRAIN_LABELS = FILES["train_images"], FILES["train_labels"]
TEST_IMAGES, TEST_LABELS = FILES["test_images"], FILES["test_labels"]

need_fashion = pytest.mark.skipif(
    not SYSTEM_COPY.is_dir(),
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist; .ci/run does)",
)


@need_fashion
def test_fashion_mnist_from_the_system_copy_is_verified(tmp_path):
    data = load_fashion(cache_dir=tmp_path / "none", download=False)
    assert data.name == "fashion-mnist" and data.classes == 10
    assert data.source.startswith("system copy")
    assert data.train_images.shape == (60000, 28, 28) and data.test_images.shape == (10000, 28, 28)
    # Its own statistics, computed from its training file (the published 0.2860 / 0.3530).
    assert abs(data.mean - 0.2860) < 5e-4 and abs(data.std - 0.3530) < 5e-4
    splits = make_splits(data, "cpu", val_size=5000)
    assert abs(splits.train.images.mean().item()) < 0.01  # centred by its own statistics


@need_fashion
def test_mnist_files_are_not_fashion_mnist(data_dir, tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte has MD5 6bbc9ace"):
        load_fashion(data_dir)
    line = one_line_error(
        runner.invoke(
            app,
            ["optimize", "--dataset", "fashion-mnist", "--data-dir", str(data_dir)]
            + ["--n-trials", "1"],
            env={"MNIST_SEARCH_STORAGE": f"sqlite:///{tmp_path}/s.db"},
        )
    )
    assert "expected " + FASHION.md5[TRAIN_IMAGES] in line
    assert not (tmp_path / "s.db").exists()


@need_fashion
def test_a_damaged_fashion_file_is_named(tmp_path):
    for name in FILES.values():
        shutil.copy(SYSTEM_COPY / f"{name}.gz", tmp_path / f"{name}.gz")
    raw = bytearray(gzip.decompress((tmp_path / f"{TEST_LABELS}.gz").read_bytes()))
    raw[500] = (raw[500] + 1) % 10
    (tmp_path / f"{TEST_LABELS}.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=f"{TEST_LABELS} has MD5 .* expected"):
        load_fashion(tmp_path)


def test_dataset_names_are_checked():
    for good in ("mnist", "fashion-mnist", "idx", "idx:0123456789ab"):
        assert check_dataset(good) is None
    for bad in ("MNIST", "fashion", "idx:", "idx:0123456789aB", "idx:0123", "", None, 3, "cifar"):
        assert "valid: mnist, fashion-mnist, or idx" in check_dataset(bad)


@pytest.mark.parametrize("bad", ["cifar10", "idx:zz", "mnist "])
def test_an_unknown_dataset_is_one_line(bad, tmp_path):
    line = one_line_error(
        runner.invoke(app, ["optimize", "--dataset", bad, "--n-trials", "1"], env={})
    )
    assert repr(bad) in line and "fashion-mnist" in line
    assert not (tmp_path / "studies").exists()


# --- a user's own folder -------------------------------------------------------------------------


def test_own_folder_reads_with_its_class_count_and_statistics(own_dir):
    data = load_own(own_dir)
    assert data.classes == 5 and data.name.startswith("idx:") and len(data.name) == 16
    assert data.train_images.shape == (3000, 28, 28) and data.test_labels.max() == 4
    pixels = data.train_images.double() / 255
    assert data.mean == pytest.approx(pixels.mean().item())
    assert data.std == pytest.approx(pixels.std(unbiased=False).item(), rel=1e-6)
    # The same bytes, compressed, are the same dataset: the fingerprint is of the content.
    assert load_data("idx", own_dir).name == data.name


def test_own_folder_gz_is_the_same_dataset(own_dir, tmp_path):
    for name in FILES.values():
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress((own_dir / name).read_bytes()))
    assert load_own(tmp_path).name == load_own(own_dir).name


def test_a_recorded_fingerprint_refuses_other_data(own_dir, tmp_path):
    name = load_own(own_dir).name
    assert load_data(name, own_dir).name == name
    other = _copy(own_dir, tmp_path)
    _rewrite(other, TRAIN_IMAGES, lambda a: np.where(a > 0, 255, 0))
    with pytest.raises(DataError, match=f"holds idx:[0-9a-f]{{12}}, not {name}"):
        load_data(name, other)
    with pytest.raises(DataError, match="--dataset idx needs --data-dir"):
        load_data("idx", None)


def _copy(src, dst):
    dst.mkdir(exist_ok=True)
    for name in FILES.values():
        shutil.copy(src / name, dst / name)
    return dst


def _rewrite(folder, name, change):
    from mnist_search.data.idx import parse_idx

    a = parse_idx((folder / name).read_bytes()).copy()
    (folder / name).write_bytes(encode_idx(change(a)))


def _header(kind: int, dims: list[int]) -> bytes:
    return bytes([0, 0, kind, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


# Each kind of damage: (file, its new bytes or a function of the old, what the error says).
DAMAGE = {
    "empty file": (TRAIN_LABELS, b"", "not an unsigned-byte IDX file"),
    "not IDX": (TRAIN_IMAGES, b"P5 28 28 255\n" + b"\0" * 784, "not an unsigned-byte IDX"),
    "float IDX": (TEST_IMAGES, _header(0x0D, [1, 28, 28]) + b"\0" * 784 * 4, "unsigned-byte"),
    "header cut": (TEST_LABELS, b"\0\0\x08\x01\0\0", "cut off"),
    "more bytes than the header": (TEST_LABELS, _header(8, [3]) + b"\0\1\2\3", "holds 4 bytes"),
    "fewer bytes than the header": (
        TEST_IMAGES,
        _header(8, [2, 28, 28]) + b"\0" * 784,
        "(1,568 bytes) but holds 784",
    ),
    "27x27 images": (TRAIN_IMAGES, _header(8, [4, 27, 27]) + b"\0" * 4 * 729, "27, 27"),
    "colour images": (TRAIN_IMAGES, _header(8, [2, 28, 28, 3]) + b"\0" * 2 * 2352, "28, 3"),
    "labels as a matrix": (TRAIN_LABELS, _header(8, [2, 2]) + b"\0\1\0\1", "expected [N]"),
    "no images": (TEST_IMAGES, _header(8, [0, 28, 28]), "holds no images"),
    "labels and images disagree": (
        TEST_LABELS,
        lambda a: a[:-1],
        "599 labels for 600 images",
    ),
    "a class missing": (
        TRAIN_LABELS,
        lambda a: np.where(a == 2, 3, a),
        "no training image has label 2",
    ),
    "one class": (TRAIN_LABELS, lambda a: np.zeros_like(a), "at least 2 classes"),
    "a test label training lacks": (
        TEST_LABELS,
        lambda a: np.where(a == 4, 9, a),
        "label 9, but the training labels are 0 to 4",
    ),
    "blank images": (TRAIN_IMAGES, lambda a: np.full_like(a, 7), "every pixel is the same"),
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_a_damaged_own_folder_is_one_line_naming_the_file(kind, own_dir, tmp_path):
    name, new, says = DAMAGE[kind]
    folder = _copy(own_dir, tmp_path / "data")
    if callable(new):
        _rewrite(folder, name, new)
    else:
        (folder / name).write_bytes(new)
    with pytest.raises(DataError, match=None) as e:
        load_own(folder)
    assert says in str(e.value) and name in str(e.value), str(e.value)
    line = one_line_error(
        runner.invoke(
            app,
            ["optimize", "--dataset", "idx", "--data-dir", str(folder), "--n-trials", "1"],
            env={"MNIST_SEARCH_STORAGE": f"sqlite:///{tmp_path}/s.db"},
        )
    )
    assert name in line and says in line
    assert not (tmp_path / "s.db").exists()  # nothing written before the data is checked


def test_an_oversized_own_file_is_refused_before_it_is_read(own_dir, tmp_path):
    folder = _copy(own_dir, tmp_path / "data")
    with open(folder / TRAIN_LABELS, "r+b") as f:
        f.truncate(8 + MAX_IMAGES + 1)  # sparse: large on paper, nothing to read
    with pytest.raises(DataError, match=f"{TRAIN_LABELS}: 250,009 bytes, more than"):
        load_own(folder)


def test_a_missing_own_file_is_named(own_dir, tmp_path):
    folder = _copy(own_dir, tmp_path / "data")
    (folder / TEST_IMAGES).unlink()
    with pytest.raises(DataError, match=f"no {TEST_IMAGES} or {TEST_IMAGES}.gz"):
        load_own(folder)
    with pytest.raises(DataError, match="does not exist"):
        load_own(tmp_path / "nowhere")


def test_the_fingerprint_is_of_every_file(own_dir):
    files = {name: (own_dir / name).read_bytes() for name in FILES.values()}
    base = fingerprint(files)
    for name in FILES.values():
        changed = dict(files)
        changed[name] = files[name][:-1] + bytes([files[name][-1] ^ 1])
        assert fingerprint(changed) != base


def test_mnist_itself_as_an_own_folder_is_not_called_mnist(data_dir):
    data = load_own(data_dir)
    assert data.classes == 10 and data.name != "mnist"
    assert len(MNIST_MD5) == 4 and torch.equal(data.test_labels[:5], torch.tensor([7, 2, 1, 0, 4]))
