"""CURE4Rec's core / edge / random user selections (xiye7lai/CURE4Rec read.py:delete): which users, all their
training interactions, deterministic core/edge with a disjoint validation block, seeded random."""

from __future__ import annotations

import numpy as np
import pytest

from expunge.data.datasets import load_dataset
from expunge.data.request import ForgetRequest
from expunge.errors import InvalidForgetRequest, MalformedForgetSpec
from expunge.scenarios.cure4rec import Cure4Rec


@pytest.fixture(scope="module")
def ds():  # type: ignore[no-untyped-def]
    return load_dataset("recsys-synth")


def users_of(ds, splits) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.unique(ds.train.owners[splits.forget])


def test_core_and_edge_are_the_most_and_least_active_users(ds) -> None:  # type: ignore[no-untyped-def]
    counts = np.bincount(ds.train.owners)
    core = users_of(ds, ForgetRequest.parse("users:core:0.05").resolve(ds))
    edge = users_of(ds, ForgetRequest.parse("users:edge:0.05").resolve(ds))
    assert len(core) == len(edge) == 15  # floor(0.05 * 300)
    rest = np.setdiff1d(np.arange(300), core)
    assert counts[core].min() >= counts[rest].max()
    rest = np.setdiff1d(np.arange(300), edge)
    assert counts[edge].max() <= counts[rest].min()
    splits = ForgetRequest.parse("users:core:0.05").resolve(ds)
    assert splits.forget.size == counts[core].sum()  # every training interaction of those users
    assert not np.isin(ds.train.owners[splits.retain], core).any()


def test_random_is_seeded_and_validation_blocks_differ(ds) -> None:  # type: ignore[no-untyped-def]
    a = users_of(ds, ForgetRequest.parse("users:random:0.05").resolve(ds, seed=0))
    b = users_of(ds, ForgetRequest.parse("users:random:0.05").resolve(ds, seed=0))
    c = users_of(ds, ForgetRequest.parse("users:random:0.05").resolve(ds, seed=1))
    assert (a == b).all() and not np.array_equal(a, c)
    scen = Cure4Rec({"selection": "core", "fraction": 0.05})
    evaluated = scen.request(ds, seed=0, validation=False)
    validation = scen.request(ds, seed=0, validation=True)
    assert validation.spec == "users:core:0.05@1" and ForgetRequest.parse("users:core:0.05@1") == validation
    assert np.intersect1d(users_of(ds, evaluated.resolve(ds)), users_of(ds, validation.resolve(ds))).size == 0


@pytest.mark.parametrize("spec", ["users:core", "users:middle:0.05", "users:edge:1.5", "users:core:x"])
def test_malformed_specs_are_refused(spec: str) -> None:
    with pytest.raises(MalformedForgetSpec, match="users:SELECTION:F"):
        ForgetRequest.parse(spec)


def test_refused_on_a_classification_dataset() -> None:
    with pytest.raises(InvalidForgetRequest, match="recsys"):
        ForgetRequest.parse("users:core:0.05").resolve(load_dataset("digits"))
