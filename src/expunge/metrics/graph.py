"""Graph family (tier 0, edge requests): can the model still tell the deleted edges apart from non-edges?

Both metrics score every deleted edge (u, v) of an ``edges:F`` request against one non-edge (u, w) per deleted edge,
w drawn (seeded by the run's seed, the same pairs for every model) among the nodes never linked to u, and report the
ROC-AUC; closeness to the Retrain is what matters (a retrained model never trained with the edges, so its AUC is what
a model that forgot them scores — not 0.5: the graph's homophily makes linked nodes alike anyway). Node outputs
are computed on the graph as it stands after the deletion (the ``graph`` task's request view), so a difference
between models is what their weights remember of the edges. Node requests get None with the reason.

* ``edge_auc_forget`` — link prediction from the node embeddings (``model.features``), score σ(z_u·z_v): the "Df
  AUC" of GNNDelete (Cheng et al., ICLR 2023) and D2DGN (Sinha et al., arXiv 2309.16173). The models are node
  classifiers, not trained for link prediction: the score reads how alike the model makes two nodes.
* ``edge_mia_auc`` — membership of the deleted edges by the link-stealing Attack-0 of He et al. (USENIX Security
  2021): the correlation of the endpoints' posteriors.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from expunge.errors import NonFiniteOutputs
from expunge.metrics.base import EvalContext, Metric, MetricValue, register_metric
from expunge.metrics.functional.graph import link_scores, pair_auc, posterior_similarity, sample_non_edges
from expunge.metrics.functional.stats import auc_se
from expunge.models.inference import eval_mode
from expunge.tasks.graph import deleted_edges, graph_of

NON_EDGE_SALT = 0xED6E


def _pairs(ctx: EvalContext) -> tuple[np.ndarray, np.ndarray] | None:
    edges = deleted_edges(ctx.splits)
    if not len(edges):
        return None

    def draw() -> np.ndarray:
        rng = np.random.default_rng(np.random.SeedSequence([ctx.seed, NON_EDGE_SALT]))
        graph = graph_of(ctx.dataset)
        return sample_non_edges(graph.n_nodes, graph.edges, edges[:, 0], rng)

    return edges, ctx.cached(("non_edges",), draw)


def node_outputs(ctx: EvalContext, role: str, what: str) -> np.ndarray:
    """``role``'s embeddings (``what="features"``) or softmax posteriors of every node, indexed by node id, on the
    request view (cached per model)."""

    def compute() -> np.ndarray:
        model = ctx.models[role]
        view, ds = ctx.view, ctx.dataset
        rows = torch.zeros(len(ds.train) + len(ds.test), *view.train_x.shape[1:])
        rows[torch.as_tensor(ds.train.ids)], rows[torch.as_tensor(ds.test.ids)] = view.train_x, view.test_x
        with torch.no_grad(), eval_mode(model):
            out = model.features(rows) if what == "features" else torch.softmax(model(rows), dim=1)
        if not bool(torch.isfinite(out).all()):  # checked once; a collapsed model's entry is the reason
            return f"the {role} model's node {what} are not finite: a collapsed model"
        return out.double().numpy()

    out = ctx.cached(("graph_nodes", what), compute, role=role, local=True)
    if isinstance(out, str):
        raise NonFiniteOutputs(out)
    return out


class _EdgeAUC(Metric):
    family = "graph"
    tasks = frozenset({"graph"})
    what: ClassVar[str]

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        pairs = _pairs(ctx)
        if pairs is None:
            return MetricValue(None, reason="not an edge request (edges:F): no deleted edge to score")
        if self.what == "features" and not hasattr(ctx.models[role], "features"):
            return MetricValue(None, reason="the model has no features(x) embedding")
        out = node_outputs(ctx, role, self.what)
        score = link_scores if self.what == "features" else posterior_similarity
        pos, neg = score(out, pairs[0]), score(out, pairs[1])
        auc = pair_auc(pos, neg)
        return MetricValue(auc, se=None if auc is None else auc_se(auc, len(pos), len(neg)))


@register_metric
class EdgeAUCForget(_EdgeAUC):
    name, what = "edge_auc_forget", "features"
    definition = ("edge requests: ROC-AUC of link scores σ(z_u·z_v) from node embeddings, deleted edges vs as many "
                  "non-edges at the same endpoints, on the graph after deletion; compare with retrain")


@register_metric
class EdgeMIAAUC(_EdgeAUC):
    name, what = "edge_mia_auc", "posteriors"
    definition = ("edge requests: link-stealing membership AUC (He et al. 2021 Attack-0: correlation of the "
                  "endpoints' posteriors), deleted edges vs non-edges, on the graph after deletion; compare with "
                  "retrain")
