"""Graph metrics: known answers of the edge-scoring functions, and None with a reason on node requests."""

from __future__ import annotations

import numpy as np
import pytest

from expunge.metrics.base import evaluate
from expunge.metrics.functional.graph import link_scores, pair_auc, posterior_similarity, sample_non_edges


def test_link_scores_known_answers():
    z = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    s = link_scores(z, np.array([[0, 1], [0, 2], [2, 2]]))
    assert s == pytest.approx([1 / (1 + np.exp(-1)), 0.5, 1 / (1 + np.exp(-4))])


def test_posterior_similarity_is_the_pearson_correlation():
    p = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7], [1 / 3, 1 / 3, 1 / 3]])
    s = posterior_similarity(p, np.array([[0, 1], [0, 2], [0, 3]]))
    assert s[0] == pytest.approx(np.corrcoef(p[0], p[1])[0, 1])
    assert s[1] == pytest.approx(np.corrcoef(p[0], p[2])[0, 1]) and s[1] < 0
    assert s[2] == 0.0, "a constant posterior correlates with nothing"


def test_pair_auc_known_answers():
    assert pair_auc(np.array([0.9, 0.8]), np.array([0.1, 0.2])) == 1.0
    assert pair_auc(np.array([0.1]), np.array([0.9])) == 0.0
    assert pair_auc(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.5
    assert pair_auc(np.array([]), np.array([0.5])) is None


def test_non_edges_are_never_edges_and_keep_the_anchor():
    rng = np.random.default_rng(0)
    edges = np.array([[0, 1], [0, 2], [1, 2], [2, 3]])
    out = sample_non_edges(5, edges, np.array([0, 0, 2, 2, 2]), rng)
    assert out[:, 0].tolist() == [0, 0, 2, 2, 2]
    linked = {tuple(e) for e in edges.tolist()}
    assert all(tuple(sorted(p)) not in linked and p[0] != p[1] for p in out.tolist())
    assert set(out[out[:, 0] == 2, 1].tolist()) <= {4}


def test_edge_metrics_need_an_edge_request(prepared_graph):
    res = evaluate(prepared_graph.eval_ctx, ["edge_auc_forget", "edge_mia_auc"], roles=("original",))
    for name in ("edge_auc_forget", "edge_mia_auc"):
        assert res[name]["original"].value is None and "edge request" in res[name]["original"].reason


def test_a_do_nothing_model_scores_like_the_original(tiny_graph, session_store):
    """The metrics read only the model and the request view: the Original as 'unlearned' gives its own values."""
    from expunge.api import prepare
    from expunge.train.loop import TrainRecipe

    prep = prepare(tiny_graph, "gcn", "edges:0.1", seed=0, store=session_store, progress=False,
                   recipe=TrainRecipe(epochs=60, batch_size=32, optimizer="adam", lr=1e-2))
    ctx = prep.eval_ctx.with_model("unlearned", prep.original.model)
    res = evaluate(ctx, ["edge_auc_forget", "edge_mia_auc"], roles=("unlearned", "original", "retrain"))
    for name, by_role in res.items():
        assert by_role["unlearned"].value == by_role["original"].value is not None, name
        assert 0.0 <= by_role["retrain"].value <= 1.0
