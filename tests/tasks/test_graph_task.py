"""The graph task: node rows reproduce full-graph GNNs exactly, the request view removes deleted nodes and edges,
and the retrain oracle never trains on a deleted element."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from expunge.data.datasets import load_dataset
from expunge.data.graphs import sbm_dataset
from expunge.data.request import ForgetRequest, Splits
from expunge.models import build_model
from expunge.store import ArtifactStore
from expunge.tasks import get_task, request_view
from expunge.tasks._graph import Graph, canonical_edges, encode, present_edges
from expunge.tasks.graph import DELETED_EDGES
from expunge.train import oracle
from expunge.train.loop import TrainRecipe

RECIPE = TrainRecipe(epochs=3, batch_size=16, optimizer="adam", lr=1e-2)


@pytest.fixture(scope="module")
def ds():
    return sbm_dataset("test-sbm", sizes=(15, 15, 15), p_in=0.2, p_out=0.02, n_features=5, seed=1)


def padded(rows: torch.Tensor, slots: int) -> torch.Tensor:
    """``rows`` of a graph with fewer slots, padded to ``slots`` (a view keeps the full graph's row shape)."""
    return torch.nn.functional.pad(rows, (0, 0, 0, slots - rows.shape[1]))


def same_rows(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=1e-6, rtol=0)


def dense_adjacency(graph: Graph, edges: np.ndarray | None = None) -> torch.Tensor:
    e = graph.edges if edges is None else edges
    a = torch.zeros(graph.n_nodes, graph.n_nodes)
    a[e[:, 0], e[:, 1]] = a[e[:, 1], e[:, 0]] = 1.0
    return a


def test_gcn_rows_equal_a_dense_full_graph_gcn(ds):
    """Kipf & Welling's Z = Â·ReLU(ÂXW1 + b1)·W2 + b2 on the whole graph, computed densely, equals the model on the
    node rows — also evaluated in chunks of 7 rows."""
    g = ds.graph
    model = build_model("gcn", input_shape=ds.input_shape, num_classes=3, seed=0)
    a = dense_adjacency(g) + torch.eye(g.n_nodes)
    d = a.sum(1).rsqrt()
    a_hat = d[:, None] * a * d[None, :]
    x = torch.as_tensor(g.features)
    expected = model.head(a_hat @ torch.relu(model.conv1(a_hat @ x)))
    rows = encode(g, np.arange(g.n_nodes))
    with torch.no_grad():
        assert torch.allclose(model(rows), expected, atol=1e-5)
        assert torch.allclose(torch.cat([model(rows[i:i + 7]) for i in range(0, len(rows), 7)]), expected, atol=1e-5)


def test_sage_rows_equal_a_dense_full_graph_sage(ds):
    """Mean-aggregator GraphSAGE, two layers: h1 = ReLU(W_r x + W_n mean_N x), out = W [h1_i, mean_N h1]."""
    g = ds.graph
    model = build_model("sage", input_shape=ds.input_shape, num_classes=3, seed=0)
    a = dense_adjacency(g)
    mean = a / a.sum(1, keepdim=True).clamp(min=1)
    x = torch.as_tensor(g.features)
    h1 = torch.relu(model.root1(x) + model.neigh1(mean @ x))
    expected = model.head(torch.cat([h1, mean @ h1], dim=1))
    with torch.no_grad():
        assert torch.allclose(model(encode(g, np.arange(g.n_nodes))), expected, atol=1e-5)


def test_a_view_without_edges_equals_a_graph_that_never_had_them(ds):
    g = ds.graph
    gone = g.edges[::4]
    kept = np.array([e for e in g.edges.tolist() if e not in gone.tolist()], dtype=np.int64)
    nodes = np.arange(g.n_nodes)
    assert same_rows(encode(g, nodes, removed_edges=gone), padded(encode(Graph(g.features, kept), nodes), g.slots))
    full = set(map(tuple, present_edges(encode(g, nodes), g).tolist()))
    assert full == set(map(tuple, g.edges.tolist())), "the decoder sees every edge of the full graph"
    assert not set(map(tuple, present_edges(encode(g, nodes, removed_edges=gone), g).tolist())) \
        & set(map(tuple, gone.tolist()))


def _captured_oracle_rows(ds, splits, monkeypatch, tmp_path) -> torch.Tensor:
    seen: list[torch.Tensor] = []
    real_fit = oracle.fit

    def spy(model, batches, recipe, **kw):  # one pass over every input row the oracle is trained on
        seen.extend(b[0] for b in batches)
        return real_fit(model, batches, recipe, **kw)

    monkeypatch.setattr(oracle, "fit", spy)
    spec = oracle.model_spec_for(ds, "gcn")
    oracle.retrain_oracle(ds, splits, spec, RECIPE, seed=0, store=ArtifactStore(tmp_path), progress=False)
    return torch.cat(seen)


def test_the_oracle_never_sees_a_deleted_edge(ds, monkeypatch, tmp_path):
    splits = ForgetRequest("edges", fraction=0.1).resolve(ds, seed=0)
    deleted = np.asarray(splits.detail[DELETED_EDGES])
    assert len(deleted) and splits.forget.size
    rows = _captured_oracle_rows(ds, splits, monkeypatch, tmp_path)
    assert len(rows) == len(ds.train), "an edge request keeps every training node"
    # the rows are exactly those of a graph in which the deleted edges never existed (no message through them)
    kept = np.array([e for e in ds.graph.edges.tolist() if e not in deleted.tolist()], dtype=np.int64)
    clean = padded(encode(Graph(ds.graph.features, kept), ds.train.ids), ds.graph.slots)
    assert all(any(same_rows(r, c) for c in clean) for r in rows)
    visible = set(map(tuple, present_edges(rows, ds.graph).tolist()))
    assert visible and not visible & set(map(tuple, canonical_edges(deleted).tolist()))
    stored = set(map(tuple, present_edges(ds.train.x, ds.graph).tolist()))  # the Original's rows carry them
    assert set(map(tuple, canonical_edges(deleted).tolist())) <= stored


def test_the_oracle_never_sees_a_deleted_node(ds, monkeypatch, tmp_path):
    splits = ForgetRequest("random", fraction=0.2).resolve(ds, seed=0)
    rows = _captured_oracle_rows(ds, splits, monkeypatch, tmp_path)
    assert len(rows) == splits.retain.size
    # poison the deleted nodes' features: any trace of them in a row would be NaN
    feats = ds.graph.features.copy()
    feats[splits.forget_ids] = np.nan
    drop = np.isin(ds.graph.edges, splits.forget_ids).any(axis=1)
    clean = padded(encode(Graph(feats, ds.graph.edges[~drop]), ds.train.ids[splits.retain]), ds.graph.slots)
    assert torch.isfinite(rows).all() and torch.isfinite(clean).all()
    assert all(any(same_rows(r, c) for c in clean) for r in rows)


def test_a_view_follows_an_explicit_retain_set(ds):
    forget = ds.train.ids[:3]
    full = Splits.from_ids(ds, forget)
    part = Splits.from_ids(ds, forget, retain_ids=ds.train.ids[3:10])
    assert full.fingerprint() == part.fingerprint()
    assert np.array_equal(request_view(ds, part).fit, part.retain) and len(request_view(ds, full).fit) > 7


def test_views_are_the_stored_tensors_for_other_tasks(digits):
    splits = ForgetRequest("random", fraction=0.1).resolve(digits, seed=0)
    view = request_view(digits, splits)
    assert view.train_x is digits.train.x and view.test_x is digits.test.x and view.fit is splits.retain
    assert get_task("classification").request_view(digits, splits) is None


def test_detail_enters_the_fingerprint_only_when_present(ds, digits):
    a = ForgetRequest("edges", fraction=0.2).resolve(ds, seed=0)
    same_nodes = Splits.from_ids(ds, a.forget_ids, request=a.request, detail={DELETED_EDGES: [[0, 1]]})
    assert a.fingerprint() != same_nodes.fingerprint() != Splits.from_ids(ds, a.forget_ids).fingerprint()
    r = ForgetRequest("random", fraction=0.1).resolve(digits, seed=0)
    from expunge._io import stable_hash  # the formula every cached oracle of whole-example requests is keyed by

    assert r.fingerprint() == stable_hash({"dataset": r.dataset_fingerprint, "forget": r.forget_ids.tolist()})


def test_node_requests_and_class_requests_resolve_on_node_ids(ds):
    cls = ForgetRequest.parse("class:1").resolve(ds, seed=0)
    assert set(ds.train.y.numpy()[cls.forget]) == {1} and cls.forget_classes == (1,) and not cls.detail
    view = request_view(ds, cls)
    assert np.array_equal(view.fit, cls.retain)


def test_karate_is_the_real_club_graph():
    k = load_dataset("karate")
    assert k.task == "graph" and k.graph.n_nodes == 34 and len(k.graph.edges) == 78
    assert len(k.train) + len(k.test) == 34 and k.class_names == ("Mr. Hi", "Officer")
    assert np.bincount(np.r_[k.train.y.numpy(), k.test.y.numpy()]).tolist() == [17, 17]


def test_graph_models_refuse_image_inputs():
    with pytest.raises(ValueError, match="graph dataset"):
        build_model("gcn", input_shape=(1, 8, 8), num_classes=10, seed=0)


def test_headline_and_parity_metrics_exist_for_the_task():
    from expunge.metrics.base import METRICS

    t = get_task("graph")
    for name in (*t.headline_metrics, *t.parity_criteria):
        assert "graph" in METRICS.get(name).tasks, name


def test_a_stored_edge_request_is_evaluated_again(tiny_graph, session_store):
    """`expunge evaluate` rebuilds the request from the manifest: its deleted edges too (else the fingerprint check
    would refuse it), and gives the numbers of the run."""
    from expunge.api import evaluate, prepare, unlearn

    prep = prepare(tiny_graph, "gcn", "edges:0.1", seed=0, store=session_store, progress=False, recipe=RECIPE)
    rec, _ = unlearn(prep, "finetune", {"epochs": 1}, metrics=["forget_acc", "edge_auc_forget"])
    again = evaluate(rec.unlearned_key, metrics=["forget_acc", "edge_auc_forget"], store=session_store,
                     dataset=tiny_graph)
    assert again.metrics == rec.metrics and again.metrics["edge_auc_forget"] is not None
