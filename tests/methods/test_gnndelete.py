"""GNNDelete-style baseline: the GNN's weights stay frozen, only the deletion operator moves; with λ = 0 (only
neighbourhood influence) it stays the identity; it forgets a deleted class on a tiny graph."""

from __future__ import annotations

import torch

from expunge.api import unlearn
from expunge.methods.base import RunContext, get_method
from expunge.protocols.runner import run_method


def _run(prep, params):
    ctx = RunContext(seed=0, model_spec=prep.spec, recipe=prep.recipe)
    return run_method(get_method("gnndelete", params), prep.original.model, prep.dataset, prep.splits, ctx)


def test_only_the_operator_is_trained(prepared_graph):
    res = _run(prepared_graph, {"epochs": 3})
    before = prepared_graph.original.model.state_dict()
    after = res.model.state_dict()
    assert set(after) - set(before) == {"deletion_operator"}
    assert all(torch.equal(before[k], after[k]) for k in before), "the GNN's weights are frozen"
    assert res.notes["operator_change"] > 0 and all(p.requires_grad for p in res.model.parameters())


def test_neighbourhood_influence_alone_keeps_the_identity(prepared_graph):
    res = _run(prepared_graph, {"lam": 0.0, "epochs": 2, "optimizer": "sgd"})
    op = res.model.deletion_operator
    assert torch.allclose(op, torch.eye(len(op)), atol=1e-6)


def test_forgets_a_deleted_class(prepared_graph):
    rec, _ = unlearn(prepared_graph, "gnndelete", {"batch_size": 12}, save=False,
                     metrics=["forget_acc", "test_acc"])
    assert rec.gap_to_retrain["forget_acc"] < 0.5 * abs(rec.original["forget_acc"] - rec.retrain["forget_acc"])
