"""The edge-deletion scenario and its ``edges:F`` request kind."""

from __future__ import annotations

import numpy as np
import pytest

from expunge.data.graphs import sbm_dataset
from expunge.data.request import ForgetRequest
from expunge.errors import InvalidForgetRequest, MalformedForgetSpec
from expunge.scenarios.base import get_scenario
from expunge.scenarios.edge_deletion import deletable_edges
from expunge.tasks.graph import DELETED_EDGES


@pytest.fixture(scope="module")
def ds():
    return sbm_dataset("edge-sbm", sizes=(20, 20, 20), p_in=0.2, p_out=0.02, n_features=4, seed=2)


def test_parse_and_spec():
    assert ForgetRequest.parse("edges:0.05").spec == "edges:0.05"
    for bad in ("edges:0", "edges:1", "edges:x", "edges:-0.1"):
        with pytest.raises(MalformedForgetSpec, match="edges"):
            ForgetRequest.parse(bad)


def test_selects_the_fraction_of_deletable_edges_and_their_training_endpoints(ds):
    splits = ForgetRequest("edges", fraction=0.1).resolve(ds, seed=4)
    deleted = np.asarray(splits.detail[DELETED_EDGES])
    candidates = deletable_edges(ds)
    assert len(deleted) == round(0.1 * len(candidates))
    assert set(map(tuple, deleted.tolist())) <= set(map(tuple, candidates.tolist()))
    assert np.isin(deleted, ds.train.ids).any(axis=1).all(), "every deleted edge touches a training node"
    assert np.array_equal(splits.forget_ids, np.intersect1d(deleted, ds.train.ids))


def test_seeded_and_validation_differs(ds):
    a, b = (ForgetRequest("edges", fraction=0.1).resolve(ds, seed=4) for _ in range(2))
    assert a.detail == b.detail and a.fingerprint() == b.fingerprint()
    c = ForgetRequest("edges", fraction=0.1).resolve(ds, seed=5)
    assert c.detail != a.detail and c.fingerprint() != a.fingerprint()


def test_refused_on_datasets_without_a_graph(digits):
    with pytest.raises(InvalidForgetRequest, match="graph"):
        ForgetRequest("edges", fraction=0.1).resolve(digits, seed=0)


def test_too_small_a_fraction_is_refused(ds):
    with pytest.raises(InvalidForgetRequest, match="selects no edge"):
        ForgetRequest("edges", fraction=1e-6).resolve(ds, seed=0)


def test_scenario_builds_an_edge_request(ds):
    sc = get_scenario("edge-deletion", {"fraction": 0.2})
    assert sc.request(ds, seed=0, validation=False) == ForgetRequest("edges", fraction=0.2)
    assert sc.tasks == frozenset({"graph"})
