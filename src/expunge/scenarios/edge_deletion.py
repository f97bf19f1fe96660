"""Edge deletion on a graph (``edges:0.05``): delete a uniformly drawn fraction of the graph's deletable edges.

The setting of GNNDelete (Cheng et al., ICLR 2023, arXiv 2302.13406) and D2DGN (Sinha et al., arXiv 2309.16173) for
node classification: the nodes stay, with their labels; only the links go. Choices made here:

* Deletable edges are those with at least one **training** endpoint: an edge between two test nodes is never drawn
  (no training example of the request would be touched by it).
* The request's forget *examples* (``Splits.forget``, what ``forget_acc`` and the loss attack measure) are the
  deleted edges' training endpoints, queried with their original neighbourhood; the edges themselves are carried in
  ``Splits.detail["deleted_edges"]`` (node-id pairs, part of the request's fingerprint), from which the ``graph``
  task rebuilds the graph without them. The retrain oracle trains on every training node of that graph.
* The draw is seeded by the run's seed (as ``random:F``); the validation request draws with seed + 1000.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from expunge._hparams import Hyperparams, hp
from expunge.data.datasets import Dataset
from expunge.data.request import ForgetRequest, RequestKind, register_request_kind
from expunge.errors import InvalidForgetRequest, MalformedForgetSpec
from expunge.scenarios.base import SingleRequest, register_scenario
from expunge.tasks.graph import DELETED_EDGES, graph_of


def deletable_edges(dataset: Dataset) -> np.ndarray:
    """The graph's edges with at least one training endpoint ((E', 2) node ids, canonical order)."""
    edges = graph_of(dataset).edges
    is_train = np.isin(edges, dataset.train.ids)
    return edges[is_train.any(axis=1)]


@register_request_kind
class EdgesKind(RequestKind):
    """``edges:F``: a uniformly drawn fraction F of the graph's edges that touch a training node."""

    name, syntax = "edges", "edges:0.05"
    scenario = "edge-deletion"
    tasks = frozenset({"graph"})

    def parse(self, arg: str, written: str) -> ForgetRequest:
        try:
            frac = float(arg)
        except ValueError:
            raise MalformedForgetSpec(f"edges:{arg}: the fraction must be a number in (0, 1)") from None
        if not 0.0 < frac < 1.0:
            raise MalformedForgetSpec(f"edges:{arg}: the fraction must be in (0, 1), e.g. edges:0.05")
        return ForgetRequest("edges", fraction=frac)

    def spec(self, request: ForgetRequest) -> str:
        return f"edges:{request.fraction:g}"

    def select(self, request: ForgetRequest, dataset: Dataset, rng: np.random.Generator) \
            -> tuple[np.ndarray, tuple[int, ...]]:
        ids, classes, _ = self.select_detail(request, dataset, rng)
        return ids, classes

    def select_detail(self, request: ForgetRequest, dataset: Dataset, rng: np.random.Generator) \
            -> tuple[np.ndarray, tuple[int, ...], dict[str, Any]]:
        edges = deletable_edges(dataset)
        k = round(float(request.fraction) * len(edges))
        if k == 0:
            raise InvalidForgetRequest(f"edges:{request.fraction:g} selects no edge of {dataset.name} ({len(edges)} "
                                       "deletable edges). Fix: a larger fraction")
        chosen = np.sort(rng.choice(len(edges), size=k, replace=False))
        deleted = edges[chosen]
        endpoints = np.intersect1d(np.unique(deleted), dataset.train.ids)
        return endpoints, (), {DELETED_EDGES: deleted.tolist()}


@dataclass(frozen=True, kw_only=True)
class EdgeParams(Hyperparams):
    fraction: float = hp(0.05, "fraction of the edges touching a training node to delete", low=0.0, low_open=True,
                         high=0.99)


@register_scenario
class EdgeDeletion(SingleRequest[EdgeParams]):
    """Delete a uniformly random fraction of a graph's edges (the nodes and their labels stay)."""

    name = "edge-deletion"
    Params = EdgeParams
    request_kind = "edges"
    tasks = frozenset({"graph"})

    def request(self, dataset: Dataset, *, seed: int, validation: bool) -> ForgetRequest:
        return ForgetRequest("edges", fraction=self.params.fraction)  # the draw is seeded by resolve()
