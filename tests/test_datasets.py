"""Datasets: stable ids and fingerprints, IDX reading (gzipped or not), clear errors when files are missing."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from expunge.data.datasets import FASHION_DEFAULT_DIR, assign_owners, load_dataset, load_fashion_mnist, read_idx
from expunge.errors import DatasetNotFound


def _write_idx(path: Path, arr: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_idx_reader(tmp_path: Path, gz: bool):
    rng = np.random.default_rng(0)
    xtr, ytr = rng.integers(0, 255, (20, 28, 28)), np.arange(20) % 10
    xte, yte = rng.integers(0, 255, (10, 28, 28)), np.arange(10) % 10
    _write_idx(tmp_path / "train-images-idx3-ubyte", xtr, gz)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", ytr, gz)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", xte, gz)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", yte, gz)
    ds = load_fashion_mnist(data_dir=str(tmp_path))
    assert ds.input_shape == (1, 28, 28) and len(ds.train) == 20 and len(ds.test) == 10
    assert list(ds.train.ids) == list(range(20)) and list(ds.test.ids) == list(range(20, 30))
    coarse = load_fashion_mnist(data_dir=str(tmp_path), labels="coarse")
    assert coarse.class_names == ("tops", "bottoms", "footwear", "bags")
    # Sandal (5), Sneaker (7), Ankle boot (9) -> footwear (2); Bag (8) -> bags (3); Dress (3) -> bottoms (1)
    assert [int(coarse.train.y[i]) for i in (5, 7, 9, 8, 3, 0)] == [2, 2, 2, 3, 1, 0]


def test_truncated_idx_is_an_error(tmp_path: Path):
    p = tmp_path / "x"
    _write_idx(p, np.zeros((4, 2, 2)), gz=False)
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(DatasetNotFound, match="truncated"):
        read_idx(p)


def test_missing_fashion_says_how_to_get_it(tmp_path: Path):
    with pytest.raises(DatasetNotFound, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(data_dir=str(tmp_path))


def test_digits_is_stable(digits):
    from expunge.data.datasets import load_digits

    fresh = load_digits()
    assert fresh.fingerprint == digits.fingerprint
    assert np.array_equal(fresh.train.ids, digits.train.ids)
    assert np.intersect1d(digits.train.ids, digits.test.ids).size == 0
    assert len(digits.train) + len(digits.test) == 1797


def test_owners_are_deterministic_groups():
    a, b = assign_owners(1000), assign_owners(1000)
    assert np.array_equal(a, b)
    sizes = np.bincount(a)
    sizes = sizes[sizes > 0]
    assert 5 < sizes.mean() < 11 and sizes.min() >= 1


@pytest.mark.skipif(not Path(FASHION_DEFAULT_DIR).is_dir(), reason="Debian dataset-fashion-mnist not installed")
def test_real_fashion_mnist():
    ds = load_dataset("fashion-mnist")
    assert len(ds.train) == 60000 and len(ds.test) == 10000 and ds.num_classes == 10
    assert np.bincount(ds.train.y.numpy()).tolist() == [6000] * 10
