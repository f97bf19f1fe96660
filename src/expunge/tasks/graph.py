"""Graph: node classification on one graph (transductive), where a request deletes nodes or edges.

Setting of Sinha, Mandal, Kankanhalli, "Distill to Delete: Unlearning in Graph Networks with Knowledge Distillation"
(D2DGN, arXiv 2309.16173) and of GNNDelete (Cheng et al., ICLR 2023, arXiv 2302.13406): a GNN trained on a graph's
training nodes, every node's features and every edge present while it trains; a request deletes **nodes** (their
features, labels and edges: ``random:F``, ``class:C``, ``ids:FILE`` on node ids) or **edges** (``edges:F``,
:mod:`expunge.scenarios.edge_deletion`).

Each example is a node; its input row is its two-hop computation tree (:mod:`expunge.tasks._graph`), so targets,
loss and per-example loss are classification's (integer labels, cross-entropy, the clipped CE the loss attacks
score). What differs is :meth:`GraphNodes.request_view`: after a request, the graph is rebuilt without the deleted
elements and every row re-encoded on it. The retrain oracle trains on those rows (for node requests on the retained
training nodes; for edge requests on every training node — no label is deleted), the methods' retain data are those
rows, and the retain and test splits are **evaluated** on them for every model, the Original included. Choices made
here (the papers leave them open or describe another protocol):

* Inference happens on the graph as it stands after the deletion, for every role: the Original is not helped by
  elements the system no longer holds, so a gap between models is what their weights remember.
* The forget split keeps the rows as they were (a deleted node with its original neighbourhood; an edge request's
  forget split is the deleted edges' training endpoints with those edges present): the membership query an attacker
  holding the deleted data would make.
* Deleted nodes are removed outright, never kept as isolated feature rows; an edge request removes edges between any
  nodes with at least one training endpoint.

The parity criteria are classification's (|Δ forget acc| ≤ 0.02, |Δ test acc| ≤ 0.02, |Δ loss-MIA AUC| ≤ 0.05),
not re-measured for graphs: the benchmark (``benchmarks/results/graph.md``) reports the Retrain-as-method noise floor
beside them.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from expunge.tasks._graph import Graph, encode
from expunge.tasks.base import RequestView, register_task
from expunge.tasks.classification import Classification

DELETED_EDGES = "deleted_edges"  # key of Splits.detail: the deleted edges as [[u, v], ...] node ids
_VIEWS: OrderedDict[tuple[str, str, str], RequestView] = OrderedDict()  # a few recent views: rebuilt rows cost ~ms-s
_MAX_VIEWS = 8


def graph_of(dataset: Any) -> Graph:
    """The :class:`Graph` a graph dataset carries (``dataset.graph``)."""
    graph = getattr(dataset, "graph", None)
    if not isinstance(graph, Graph):
        raise ValueError(f"{dataset.name} is a graph-task dataset without a graph; build it with "
                         "expunge.data.graphs.graph_dataset")
    return graph


def deleted_edges(splits: Any) -> np.ndarray:
    """The edges an edge request deletes ((k, 2) node ids; empty for node requests)."""
    return np.asarray(splits.detail.get(DELETED_EDGES, []), dtype=np.int64).reshape(-1, 2)


@register_task
class GraphNodes(Classification):
    name = "graph"
    summary = "node classification on a graph; requests delete nodes or edges; cross-entropy; accuracy"
    headline_metrics = ("forget_acc", "retain_acc", "test_acc", "mia_loss_auc", "js_to_retrain_forget",
                        "edge_auc_forget")
    parity_criteria: ClassVar[Mapping[str, float]] = {"forget_acc": 0.02, "test_acc": 0.02, "mia_loss_auc": 0.05}
    per_example_criteria: ClassVar[Mapping[str, float]] = {}
    per_example_kinds = frozenset()
    one_sided_criteria = frozenset()

    def request_view(self, dataset: Any, splits: Any) -> RequestView:
        # the retain set too: splits built with explicit retain ids share the forget set's fingerprint
        retain = hashlib.sha256(np.asarray(splits.retain).tobytes()).hexdigest()
        key = (dataset.fingerprint, splits.fingerprint(), retain)
        if key in _VIEWS:
            _VIEWS.move_to_end(key)
            return _VIEWS[key]
        graph = graph_of(dataset)
        edges = deleted_edges(splits)
        if len(edges):  # an edge request: every node stays, with its label
            removed_nodes, fit = np.zeros(0, np.int64), np.arange(len(dataset.train), dtype=np.int64)
        else:
            removed_nodes, fit = splits.forget_ids, splits.retain
        view = RequestView(encode(graph, dataset.train.ids, removed_nodes=removed_nodes, removed_edges=edges),
                           encode(graph, dataset.test.ids, removed_nodes=removed_nodes, removed_edges=edges),
                           np.asarray(fit, dtype=np.int64))
        _VIEWS[key] = view
        if len(_VIEWS) > _MAX_VIEWS:
            _VIEWS.popitem(last=False)
        return view
