"""Forget requests: every spec kind resolves correctly; every bad request raises its typed error and writes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from expunge.api import prepare
from expunge.data.datasets import from_arrays
from expunge.data.request import ForgetRequest, Splits
from expunge.errors import (
    DuplicateIds,
    EmptyForgetSet,
    FingerprintMismatch,
    ForgetIsWholeTrainingSet,
    InvalidForgetRequest,
    MalformedForgetSpec,
    SplitOverlap,
    UnknownIds,
)
from expunge.store import ArtifactStore
from expunge.train.oracle import check_fingerprint


def test_class_request_selects_exactly_that_class(digits):
    s = ForgetRequest.parse("class:3").resolve(digits)
    assert (digits.train.y.numpy()[s.forget] == 3).all()
    assert not (digits.train.y.numpy()[s.retain] == 3).any()
    assert s.forget.size + s.retain.size == len(digits.train)
    assert s.forget_classes == (3,)


def test_classes_and_names(digits):
    s = ForgetRequest.parse("classes:3,5").resolve(digits)
    assert set(np.unique(digits.train.y.numpy()[s.forget])) == {3, 5}


def test_random_fraction_is_seeded(digits):
    a = ForgetRequest.parse("random:0.1").resolve(digits, seed=1)
    b = ForgetRequest.parse("random:0.1").resolve(digits, seed=1)
    c = ForgetRequest.parse("random:0.1").resolve(digits, seed=2)
    assert a.forget.size == round(0.1 * len(digits.train))
    assert np.array_equal(a.forget, b.forget) and not np.array_equal(a.forget, c.forget)


def test_owner_request_forgets_whole_owner_groups(digits):
    s = ForgetRequest.parse("owners:5").resolve(digits, seed=0)
    owners = digits.train.owners
    chosen = np.unique(owners[s.forget])
    assert chosen.size == 5
    assert np.isin(owners[s.retain], chosen).sum() == 0  # no example of a chosen owner is retained


def test_subclass_needs_coarse_labels(digits):
    from expunge.data.datasets import load_dataset

    with pytest.raises(InvalidForgetRequest, match="coarse"):
        ForgetRequest.parse("subclass:3").resolve(digits)
    coarse = load_dataset("digits", labels="coarse")
    s = ForgetRequest.parse("subclass:3").resolve(coarse)
    assert (coarse.train.fine[s.forget] == 3).all()
    assert set(coarse.train.y.numpy()[s.forget]) == {1}  # 3 is odd
    assert coarse.fingerprint != digits.fingerprint


def test_ids_file(tmp_path: Path, digits):
    ids = digits.train.ids[:5]
    f = tmp_path / "ids.txt"
    f.write_text("# forget these\n" + "\n".join(map(str, ids)) + "\n")
    s = ForgetRequest.parse(f"ids:{f}").resolve(digits)
    assert np.array_equal(np.sort(digits.train.ids[s.forget]), np.sort(ids))


@pytest.mark.parametrize("spec", ["class", "class:", "random:1.5", "random:x", "owners:0", "bogus:3", "ids:/nope"])
def test_malformed_specs(spec):
    with pytest.raises(MalformedForgetSpec):
        ForgetRequest.parse(spec)


def test_unknown_class_name(digits):
    with pytest.raises(InvalidForgetRequest, match="class 12 does not exist"):
        ForgetRequest.parse("class:12").resolve(digits)


def test_empty_forget_set(digits):
    with pytest.raises(EmptyForgetSet):
        Splits.from_ids(digits, np.array([], dtype=np.int64))


def test_forget_whole_training_set(digits):
    with pytest.raises(ForgetIsWholeTrainingSet):
        Splits.from_ids(digits, digits.train.ids)
    with pytest.raises(ForgetIsWholeTrainingSet):
        ForgetRequest.parse("owners:100000").resolve(digits)


def test_unknown_ids_are_named(digits):
    test_id = int(digits.test.ids[0])
    with pytest.raises(UnknownIds) as err:
        Splits.from_ids(digits, np.array([int(digits.train.ids[0]), 99999, test_id]))
    assert err.value.ids == sorted([99999, test_id])
    assert "99999" in str(err.value) and "test ids" in str(err.value)


def test_duplicate_ids_are_named(digits):
    i = int(digits.train.ids[3])
    with pytest.raises(DuplicateIds) as err:
        Splits.from_ids(digits, np.array([i, i, int(digits.train.ids[4])]))
    assert err.value.ids == [i]


def test_forget_retain_overlap(digits):
    f = digits.train.ids[:3]
    with pytest.raises(SplitOverlap, match="forget and retain") as err:
        Splits.from_ids(digits, f, retain_ids=digits.train.ids[2:10])
    assert err.value.ids == [int(digits.train.ids[2])]


def test_test_overlapping_train():
    x = np.zeros((6, 1, 2, 2), np.float32)
    ds = from_arrays("tiny", x_train=x, y_train=[0, 1, 0, 1, 0, 1], x_test=x[:2], y_test=[0, 1],
                     class_names=("a", "b"), train_ids=np.arange(6), test_ids=np.array([5, 6]))
    with pytest.raises(SplitOverlap, match="test and train") as err:
        Splits.from_ids(ds, np.array([0]))
    assert err.value.ids == [5]


def test_fingerprint_mismatch(digits):
    with pytest.raises(FingerprintMismatch, match="fingerprint"):
        check_fingerprint({"dataset": {"fingerprint": "0" * 64}}, digits)
    check_fingerprint({"dataset": {"fingerprint": digits.fingerprint}}, digits)


@pytest.mark.parametrize("spec", ["class:12", "random:0.0000001", "owners:100000"])
def test_bad_request_writes_nothing(tmp_path: Path, spec):
    root = tmp_path / "store"
    with pytest.raises(InvalidForgetRequest):
        prepare("digits", "mlp", spec, store=ArtifactStore(root), progress=False)
    assert not root.exists() or not any(root.rglob("*"))
