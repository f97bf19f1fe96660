"""D2DGN (distill_to_delete): the issue's test — on a tiny graph its student matches the retrain oracle better than
doing nothing — and the choices its docstring makes."""

from __future__ import annotations

import pytest
import torch

from expunge.api import prepare, unlearn
from expunge.data.access import DataAccess, UnlearningData
from expunge.methods.base import RunContext, get_method
from expunge.protocols.runner import run_method
from expunge.store.artifacts import state_hash
from expunge.tasks import UnsupportedTask
from expunge.train.loop import TrainRecipe

METRICS = ["forget_acc", "retain_acc", "test_acc", "js_to_retrain_forget", "edge_auc_forget"]


def test_student_matches_the_oracle_better_than_doing_nothing(prepared_graph):
    """Forget class 0 of a 90-node block model: the Original still classifies the deleted nodes (forget acc ≈ 1), the
    oracle does not (0). D2DGN's student is closer to the oracle on the deleted nodes and keeps test accuracy."""
    prep = prepared_graph  # 36 retained training nodes: smaller batches give the default lr its steps
    rec, _ = unlearn(prep, "distill_to_delete", {"batch_size": 12, "epochs": 10}, save=False,
                     metrics=["forget_acc", "test_acc", "retain_acc", "js_to_retrain_forget"])
    nothing = rec.original["js_to_retrain_forget"]  # the Original's divergence from the oracle on the deleted nodes
    assert rec.metrics["js_to_retrain_forget"] < nothing
    gap_nothing = abs(rec.original["forget_acc"] - rec.retrain["forget_acc"])
    assert gap_nothing > 0.5, "the request must have something to forget"
    assert rec.gap_to_retrain["forget_acc"] < 0.5 * gap_nothing
    assert rec.gap_to_retrain["test_acc"] <= abs(rec.original["test_acc"] - rec.retrain["test_acc"]) + 0.1
    assert rec.metrics["retain_acc"] >= rec.retrain["retain_acc"] - 0.15


def test_alpha_one_keeps_the_original(prepared_graph):
    """With α = 1 only the preserver term is left; the student starts as the Original's copy and the preserver is
    the frozen Original, so the loss and its gradient are zero and the weights stay (student = copy of the trained
    GNN, preserver = the Original). SGD: Adam would normalise the round-off gradients of batch-size-dependent matmul
    sums into full-size steps."""
    prep = prepared_graph
    ctx = RunContext(seed=0, model_spec=prep.spec, recipe=prep.recipe)
    method = get_method("distill_to_delete", {"alpha": 1.0, "epochs": 2, "optimizer": "sgd"})
    res = run_method(method, prep.original.model, prep.dataset, prep.splits, ctx)
    for a, b in zip(res.model.parameters(), prep.original.model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_preserver_targets_come_from_the_retained_graph(prepared_graph):
    """L_r reads the retain data, which on a graph are the rows rebuilt without the deleted nodes."""
    prep = prepared_graph
    data = UnlearningData(prep.dataset, prep.splits, DataAccess.RETAIN | DataAccess.FORGET)
    xr, _ = data.retain_tensors()
    stored = prep.dataset.train.x[prep.splits.retain]
    assert xr.shape == stored.shape and not torch.equal(xr, stored), "the deleted nodes' edges are gone"


def test_edge_request_forgets_edges_only(tiny_graph, session_store):
    recipe = TrainRecipe(epochs=60, batch_size=32, optimizer="adam", lr=1e-2)
    prep = prepare(tiny_graph, "gcn", "edges:0.1", seed=0, store=session_store, recipe=recipe, progress=False)
    rec, _ = unlearn(prep, "distill_to_delete", save=False, metrics=METRICS)
    notes = rec.notes
    assert notes["n_deleted_edges"] == len(prep.splits.detail["deleted_edges"]) > 0
    assert 0 <= notes["skipped_edges"] < notes["n_deleted_edges"]
    assert rec.metrics["edge_auc_forget"] is not None
    # the nodes keep their labels: no destroyer on the endpoints' outputs
    assert rec.metrics["forget_acc"] >= rec.retrain["forget_acc"] - 0.15


def test_deterministic_destroyer(prepared_graph):
    prep = prepared_graph
    hashes = set()
    for _ in range(2):
        ctx = RunContext(seed=3, model_spec=prep.spec, recipe=prep.recipe)
        hashes.add(state_hash(run_method(get_method("distill_to_delete", {"epochs": 1}), prep.original.model,
                                         prep.dataset, prep.splits, ctx).model))
    assert len(hashes) == 1


def test_refused_on_image_classification():
    with pytest.raises(UnsupportedTask, match="distill_to_delete"):
        get_method("distill_to_delete").check_task("classification")
