"""The regression MIA of Deep Regression Unlearning (SVC on the absolute error, retain vs test): known answers and
its reading on a real Original and Retrain."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from expunge import api
from expunge.metrics.base import evaluate
from expunge.metrics.functional.regression import l1_svc_mia
from expunge.protocols.pipeline import Prepared
from expunge.store import ArtifactStore

NAME = "mia_l1_svc_retain_vs_test_dru"


def test_known_answers():
    members, nonmembers = np.full(50, 0.01), np.full(50, 1.5)
    assert l1_svc_mia(members, nonmembers, np.full(10, 1.5)) == 0.0
    assert l1_svc_mia(members, nonmembers, np.full(10, 0.01)) == 1.0
    assert l1_svc_mia(members, nonmembers, np.r_[np.full(3, 0.01), np.full(7, 1.5)]) == pytest.approx(0.3)


def test_too_few_attacker_examples_or_no_forget_set_give_none():
    with pytest.warns(UserWarning):
        assert l1_svc_mia(np.zeros(5), np.ones(50), np.zeros(3)) is None
    with pytest.warns(UserWarning):
        assert l1_svc_mia(np.zeros(50), np.ones(50), np.zeros(0)) is None


@pytest.fixture(scope="module")
def prepared(session_store: ArtifactStore) -> Prepared:
    return api.prepare("diabetes", "mlp", "random:0.1", seed=0, store=session_store, progress=False)


def test_the_original_s_forget_set_looks_more_like_members_than_the_retrain_s(prepared: Prepared):
    ctx = prepared.eval_ctx.with_model("unlearned", copy.deepcopy(prepared.original.model))
    res = evaluate(ctx, [NAME])[NAME]
    o, r, u = res["original"], res["retrain"], res["unlearned"]
    assert o.value > r.value + 0.2  # the Original fits its forget rows like retain rows; the Retrain does not
    assert u.value == o.value  # the same model, the same seeded attacker
    assert o.details["n_forget"] == prepared.splits.forget.size and o.se is not None


def test_declared_for_regression_only():
    """Other tasks get None with a reason from the metric base (checked for every metric by the contract suite)."""
    from expunge.metrics.base import METRICS

    assert METRICS.get(NAME).tasks == frozenset({"regression"})
