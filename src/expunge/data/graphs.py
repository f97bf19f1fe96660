"""Graph datasets for the ``graph`` task (node classification): a seeded stochastic block model and Zachary's
karate club.

A graph dataset is a :class:`GraphDataset`: the usual train/test partitions, one example per node (ids = node ids),
whose inputs are the nodes' rows on the full graph (:mod:`expunge.tasks._graph`), plus the :class:`Graph` itself, from
which the ``graph`` task rebuilds the rows after a deletion. Transductive: every node's features and every edge are
present while the Original trains; only training nodes' labels are used.

* ``sbm`` — the built-in default: a stochastic block model with 4 classes of 200 nodes, edge probability 0.02 within
  a class and 0.002 across (expected degree ≈ 5.2, ≈ 77% of edges within a class), and 16 class-correlated Gaussian
  features per node (class means drawn N(0, I) and scaled by 0.6, unit noise: features alone classify ≈ 60-65% of
  nodes, the graph lifts a GCN far above that). Split 60/40 stratified. Generated from a fixed seed, so every
  machine gets the same graph; numpy only. Why synthetic: no package of the allowed registries ships a citation or
  social graph with node features offline (PyG's and DGL's Planetoid loaders download at run time), and a known
  generator lets the tests and the benchmark say what the graph's structure is.
* ``karate`` — Zachary's karate club (34 members, 78 friendships, 1977), from networkx (installed with torch),
  labelled by the faction each member joined (``club``: Mr. Hi / Officer); one-hot identity features, as in Kipf &
  Welling's demonstration. The only real graph with node labels found offline; too small to benchmark, kept for
  tests and for trying the task on real data. Split 24/10 stratified with a fixed seed.

The fingerprint covers features, edges, labels and the split.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from expunge.data.datasets import Dataset, LabelSet, fingerprint_arrays, from_arrays, register_dataset
from expunge.errors import InvalidForgetRequest
from expunge.tasks._graph import Graph, canonical_edges, encode

SBM_SEED = 20261207  # fixed: the graph is a property of the dataset, not of a run


@dataclass(frozen=True, eq=False)
class GraphDataset(Dataset):
    """A graph-task dataset: partitions of node rows plus the :class:`Graph` they were encoded from."""

    graph: Graph | None = None


def graph_dataset(name: str, graph: Graph, labels: np.ndarray, *, train_ids: np.ndarray, test_ids: np.ndarray,
                  class_names: tuple[str, ...], labels_set: LabelSet = "fine") -> GraphDataset:
    """A :class:`GraphDataset` of node classification on ``graph`` (public: a user's own graph).

    Raises:
        InvalidForgetRequest: coarse labels asked for (graphs have none).
        ValueError: ids that are not node ids, or a node in both partitions."""
    if labels_set != "fine":
        raise InvalidForgetRequest(f"{name} has no coarse labels (sub-class requests need an image dataset). Fix: "
                                   "forget random:F, class:C, edges:F or ids:FILE")
    train_ids, test_ids = np.sort(np.asarray(train_ids, np.int64)), np.sort(np.asarray(test_ids, np.int64))
    if np.intersect1d(train_ids, test_ids).size or min(train_ids.min(), test_ids.min()) < 0 \
            or max(train_ids.max(), test_ids.max()) >= graph.n_nodes:
        raise ValueError(f"{name}: train and test ids must be disjoint node ids 0..{graph.n_nodes - 1}")
    rows = encode(graph, np.arange(graph.n_nodes)).numpy()
    labels = np.asarray(labels, np.int64)
    base = from_arrays(name, x_train=rows[train_ids], y_train=labels[train_ids], x_test=rows[test_ids],
                       y_test=labels[test_ids], class_names=class_names, train_ids=train_ids, test_ids=test_ids,
                       raw_for_fingerprint=(graph.features,))
    fp = fingerprint_arrays(graph.features, graph.edges, labels, train_ids, test_ids, extra=f"{name}|fine|graph")
    values = {f.name: getattr(base, f.name) for f in fields(Dataset)}
    return GraphDataset(**{**values, "fingerprint": fp, "task": "graph"}, graph=graph)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    ids = np.arange(len(labels), dtype=np.int64)
    tr, te = train_test_split(ids, test_size=test_fraction, random_state=seed, stratify=labels)
    return np.sort(tr), np.sort(te)


def sbm_graph(sizes: tuple[int, ...] = (200, 200, 200, 200), p_in: float = 0.02, p_out: float = 0.002,
              n_features: int = 16, signal: float = 0.6, seed: int = SBM_SEED) -> tuple[Graph, np.ndarray]:
    """A stochastic block model with class-correlated Gaussian features; returns the graph and the node labels."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    n = len(labels)
    iu, ju = np.triu_indices(n, k=1)
    p = np.where(labels[iu] == labels[ju], p_in, p_out)
    chosen = rng.random(len(iu)) < p
    means = rng.normal(size=(len(sizes), n_features)) * signal
    features = (means[labels] + rng.normal(size=(n, n_features))).astype(np.float32)
    return Graph(features, canonical_edges(np.stack([iu[chosen], ju[chosen]], axis=1))), labels


def sbm_dataset(name: str = "sbm", *, sizes: tuple[int, ...] = (200, 200, 200, 200), p_in: float = 0.02,
                p_out: float = 0.002, n_features: int = 16, signal: float = 0.6, seed: int = SBM_SEED,
                test_fraction: float = 0.4, labels: LabelSet = "fine") -> GraphDataset:
    """A stochastic-block-model node-classification dataset (the registered ``sbm`` with its defaults; smaller ones
    for tests and quick trials), split stratified with ``random_state=0``."""
    graph, y = sbm_graph(sizes, p_in, p_out, n_features, signal, seed)
    tr, te = stratified_split(y, test_fraction, seed=0)
    return graph_dataset(name, graph, y, train_ids=tr, test_ids=te,
                         class_names=tuple(str(c) for c in range(len(sizes))), labels_set=labels)


@register_dataset("sbm")
def load_sbm(*, data_dir: str | None = None, labels: LabelSet = "fine") -> Dataset:
    return sbm_dataset("sbm", labels=labels)


@register_dataset("karate")
def load_karate(*, data_dir: str | None = None, labels: LabelSet = "fine") -> Dataset:
    import networkx as nx

    g = nx.karate_club_graph()
    nodes = sorted(g.nodes)
    y = np.array([0 if g.nodes[v]["club"] == "Mr. Hi" else 1 for v in nodes], dtype=np.int64)
    graph = Graph(np.eye(len(nodes), dtype=np.float32), canonical_edges(np.array(list(g.edges), dtype=np.int64)))
    tr, te = stratified_split(y, 10 / 34, seed=0)
    return graph_dataset("karate", graph, y, train_ids=tr, test_ids=te, class_names=("Mr. Hi", "Officer"),
                         labels_set=labels)
