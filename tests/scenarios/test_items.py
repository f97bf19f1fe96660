"""Item deletion: ``items:K`` takes every training interaction of K seeded random items, ``item:ID`` of named items
(ids as in the data file); unknown ids and too many items are typed errors."""

from __future__ import annotations

import numpy as np
import pytest

from expunge.data.datasets import load_dataset
from expunge.data.request import ForgetRequest
from expunge.errors import ForgetIsWholeTrainingSet, InvalidForgetRequest, MalformedForgetSpec


def test_items_k_forgets_every_interaction_of_k_items() -> None:
    ds = load_dataset("recsys-synth")
    splits = ForgetRequest.parse("items:2").resolve(ds, seed=0)
    items = np.unique(ds.train.y.numpy()[splits.forget])
    assert len(items) == 2
    assert not np.isin(ds.train.y.numpy()[splits.retain], items).any()
    again = ForgetRequest.parse("items:2").resolve(ds, seed=0)
    assert np.array_equal(splits.forget, again.forget)
    assert not np.array_equal(ForgetRequest.parse("items:2").resolve(ds, seed=3).forget, splits.forget)


def test_named_items_by_file_id() -> None:
    ds = load_dataset("recsys-synth")
    splits = ForgetRequest.parse("item:7,11").resolve(ds)
    assert set(np.unique(ds.train.y.numpy()[splits.forget])) == {ds.class_names.index("7"), ds.class_names.index("11")}
    with pytest.raises(InvalidForgetRequest, match="9999"):
        ForgetRequest.parse("item:9999").resolve(ds)
    with pytest.raises(MalformedForgetSpec):
        ForgetRequest.parse("items:0")
    with pytest.raises(ForgetIsWholeTrainingSet):
        ForgetRequest.parse("items:400").resolve(ds)
