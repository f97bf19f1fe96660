"""Datasets: stable ids and fingerprints, IDX reading (gzipped or not), clear errors when files are missing."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest
import torch

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


# ------------------------------------------------------------------------------------------- diabetes (regression)
def test_diabetes_ids_split_and_fingerprint_are_stable():
    from expunge.data.datasets import load_diabetes

    ds, fresh = load_dataset("diabetes"), load_diabetes()
    assert ds.task == "regression" and ds.num_classes == 0 and ds.num_outputs == 1 and ds.input_shape == (10,)
    assert len(ds.train) == 331 and len(ds.test) == 111
    assert np.array_equal(np.sort(np.r_[ds.train.ids, ds.test.ids]), np.arange(442))  # disjoint, every row once
    assert ds.train.ids[:8].tolist() == [0, 2, 3, 9, 11, 13, 14, 16]  # the fixed-seed split, pinned
    assert fresh.fingerprint == ds.fingerprint and ds.fingerprint.startswith("0a0fe54a18df4d7b")
    assert np.array_equal(fresh.train.owners, ds.train.owners) and len(np.unique(ds.train.owners)) > 30


def test_diabetes_is_standardized_with_training_statistics():
    from sklearn.datasets import load_diabetes as sk

    ds = load_dataset("diabetes")
    y, x = ds.train.y.numpy(), ds.train.x.numpy()
    assert ds.train.y.dtype == torch.float32 and ds.train.x.dtype == torch.float32 and y.shape == (331,)
    assert abs(y.mean()) < 1e-6 and y.std() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=0), 1.0, atol=1e-5)
    raw = sk(scaled=False).target
    mean, std = raw[ds.train.ids].mean(), raw[ds.train.ids].std()
    assert (mean, std) == pytest.approx((151.9, 79.1), abs=0.05)  # the scale the module docstring states
    np.testing.assert_allclose(ds.test.y.numpy() * std + mean, raw[ds.test.ids], rtol=1e-5)  # test: training scale


def _arrays(y_train, y_test, n_features: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x_train": rng.normal(size=(len(y_train), n_features)), "y_train": np.asarray(y_train),
            "x_test": rng.normal(size=(len(y_test), n_features)), "y_test": np.asarray(y_test)}


def test_from_arrays_builds_a_regression_dataset():
    from expunge.data.datasets import from_arrays

    ds = from_arrays("toy", **_arrays([0.5, 1, 2, 3], [4.0, 5.0]), task="regression")
    assert ds.task == "regression" and ds.class_names == () and ds.num_outputs == 1
    assert ds.train.y.dtype == torch.float32 and ds.train.y.tolist() == [0.5, 1, 2, 3]
    multi = from_arrays("toy", **_arrays(np.ones((4, 2)), np.ones((2, 2))), task="regression")
    assert multi.num_outputs == 2 and tuple(multi.train.y.shape) == (4, 2)


def test_the_fingerprint_includes_the_task_and_classification_s_is_unchanged():
    from expunge.data.datasets import fingerprint_arrays, from_arrays

    arrays = _arrays([0, 1, 0, 1], [1, 0])
    cls = from_arrays("toy", **arrays, class_names=("a", "b"))
    reg = from_arrays("toy", **arrays, task="regression")
    assert cls.fingerprint != reg.fingerprint
    ids = (np.arange(4), np.arange(4, 6))
    before_tasks = fingerprint_arrays(arrays["x_train"], arrays["x_test"], arrays["y_train"].astype(np.int64),
                                      arrays["y_test"].astype(np.int64), *ids, extra="toy|fine")
    assert cls.fingerprint == before_tasks  # cached classification models stay valid


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"y_train": [0.0, float("nan"), 1.0, 2.0]}, "y_train: regression targets must be finite"),
        ({"y_test": ["a", "b"]}, "y_test: regression targets must be real numbers"),
        ({"y_train": [0.0, 1.0, 2.0]}, "x_train has 4 rows but y_train has 3"),
        ({"class_names": ("a", "b")}, "has no classes"),
        ({"y_test": np.ones((2, 2))}, "differ in target dimension"),
    ],
)
def test_bad_regression_arrays_are_refused(kwargs, fragment: str):
    from expunge.data.datasets import from_arrays
    from expunge.errors import InvalidDataset

    arrays = {**_arrays([0.5, 1, 2, 3], [4.0, 5.0]), **{k: v for k, v in kwargs.items() if k.startswith("y_")}}
    extra = {k: v for k, v in kwargs.items() if not k.startswith("y_")}
    with pytest.raises(InvalidDataset, match=re.escape(fragment)):
        from_arrays("toy", **arrays, **extra, task="regression")


def test_class_requests_on_a_regression_dataset_say_what_to_do():
    from expunge.api import load
    from expunge.data.request import ForgetRequest
    from expunge.errors import InvalidForgetRequest

    ds = load_dataset("diabetes")
    for spec in ("class:3", "classes:1,2"):
        with pytest.raises(InvalidForgetRequest, match=r"need a classification or graph dataset.*Fix: forget random:F"):
            ForgetRequest.parse(spec).resolve(ds)
    with pytest.raises(InvalidForgetRequest, match=r"no coarse labels.*Fix: forget random:F"):
        load("diabetes", forget="subclass:odd")
