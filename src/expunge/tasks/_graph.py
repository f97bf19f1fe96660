"""A graph's nodes as self-contained input rows: the computation tree of a two-layer GNN, one node per row.

Why rows and not an adjacency matrix passed beside the features: every shared part of expunge (mini-batch training,
256-row inference chunks, the forget/retain gate, the metrics' per-split logits) hands a model a tensor of examples
and nothing else. A two-layer GCN or GraphSAGE output of node i depends only on i, its neighbours j and, for each j,
one aggregate of j's own neighbourhood — so each node's row carries exactly that, and any subset of rows can be
evaluated alone with the same result as a full-graph pass (``tests/tasks/test_graph_task.py`` checks this against a
dense full-graph GCN). The aggregates are computed once per graph view with ``torch.sparse.mm``.

Row layout, shape ``(slots, 2 + 3F)``: slot 0 is the node itself, slots 1..deg(i) its neighbours (ascending id),
the rest zero. Per slot j: ``[â_ij, 1, x_j, (ÂX)_j, mean_{k∈N(j)} x_k]`` with Â = D̃^-1/2 (A + I) D̃^-1/2 (Kipf &
Welling's renormalised adjacency, D̃ the degree with the self-loop); ``1`` marks a real slot. ``slots`` is the full
graph's maximum degree + 1, so every view of it (nodes or edges removed) has the same shape.

A *view* removes nodes (all their edges go, and their features reach no other row) and/or edges, then rebuilds the
rows of the requested nodes: what a model trained after a deletion may see. Node ids are the positions 0..N-1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True, eq=False)
class Graph:
    """An undirected graph with node features. ``edges``: (E, 2) int64 node ids with u < v, unique, no self-loops;
    node ids are 0..N-1 (the rows of ``features``)."""

    features: np.ndarray
    edges: np.ndarray

    def __post_init__(self) -> None:
        e = self.edges
        if e.ndim != 2 or e.shape[1] != 2:
            raise ValueError(f"edges must be (E, 2) node ids, got shape {e.shape}")
        if e.size and (e.min() < 0 or e.max() >= self.n_nodes or not (e[:, 0] < e[:, 1]).all()):
            raise ValueError("edges must be node ids 0..N-1 written once with u < v (no self-loops)")
        if len(np.unique(edge_keys(e, self.n_nodes))) != len(e):
            raise ValueError("edges must be unique")

    @property
    def n_nodes(self) -> int:
        return len(self.features)

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    @property
    def slots(self) -> int:
        deg = np.bincount(self.edges.reshape(-1), minlength=self.n_nodes)
        return int(deg.max(initial=0)) + 1

    @property
    def row_shape(self) -> tuple[int, int]:
        return self.slots, 2 + 3 * self.n_features


def canonical_edges(pairs: np.ndarray) -> np.ndarray:
    """(k, 2) pairs written u < v, unique, sorted: the form :class:`Graph` stores."""
    p = np.sort(np.asarray(pairs, dtype=np.int64).reshape(-1, 2), axis=1)
    p = p[p[:, 0] != p[:, 1]]
    return np.unique(p, axis=0) if len(p) else p


def edge_keys(edges: np.ndarray, n: int) -> np.ndarray:
    """One int64 per canonical edge (u·n + v), for set operations on edges."""
    return edges[:, 0].astype(np.int64) * n + edges[:, 1]


def neighbours_of(graph: Graph, node: int) -> np.ndarray:
    e = graph.edges
    return np.sort(np.concatenate([e[e[:, 0] == node, 1], e[e[:, 1] == node, 0]]))


def _sparse(n: int, src: np.ndarray, dst: np.ndarray, values: np.ndarray) -> torch.Tensor:
    idx = torch.as_tensor(np.stack([src, dst]), dtype=torch.int64)
    return torch.sparse_coo_tensor(idx, torch.as_tensor(values, dtype=torch.float32), (n, n),
                                   check_invariants=True).coalesce()


def encode(graph: Graph, nodes: np.ndarray, *, removed_nodes: np.ndarray | None = None,
           removed_edges: np.ndarray | None = None) -> torch.Tensor:
    """Rows (``graph.row_shape``) of ``nodes`` on ``graph`` without ``removed_nodes`` and ``removed_edges``.

    A removed node asked for anyway gets the row of an isolated node (its own features, no neighbour)."""
    n, f = graph.n_nodes, graph.n_features
    active = np.ones(n, dtype=bool)
    if removed_nodes is not None and len(removed_nodes):
        active[np.asarray(removed_nodes, dtype=np.int64)] = False
    e = graph.edges
    keep = active[e[:, 0]] & active[e[:, 1]]
    if removed_edges is not None and len(removed_edges):
        keep &= ~np.isin(edge_keys(e, n), edge_keys(canonical_edges(removed_edges), n))
    e = e[keep]
    src, dst = np.concatenate([e[:, 0], e[:, 1]]), np.concatenate([e[:, 1], e[:, 0]])
    deg = np.bincount(src, minlength=n).astype(np.float64)
    d_tilde = deg + 1.0  # the self-loop of the renormalisation trick
    x = torch.as_tensor(graph.features, dtype=torch.float32)
    loops = np.arange(n)
    a_hat = _sparse(n, np.concatenate([src, loops]), np.concatenate([dst, loops]),
                    np.concatenate([1.0 / np.sqrt(d_tilde[src] * d_tilde[dst]), 1.0 / d_tilde]))
    ax = torch.sparse.mm(a_hat, x)
    mean_nb = torch.sparse.mm(_sparse(n, src, dst, 1.0 / np.maximum(deg[src], 1.0)), x) if len(src) \
        else torch.zeros_like(x)
    per_node = torch.cat([x, ax, mean_nb], dim=1)  # (n, 3F): what a slot holding node j carries

    nodes = np.asarray(nodes, dtype=np.int64)
    slots = graph.slots
    rows = torch.zeros(len(nodes), slots, 2 + 3 * f)
    rows[:, 0, 0] = torch.as_tensor(1.0 / d_tilde[nodes], dtype=torch.float32)
    rows[:, 0, 1] = 1.0
    rows[:, 0, 2:] = per_node[nodes]
    row_of = np.full(n, -1, dtype=np.int64)
    row_of[nodes] = np.arange(len(nodes))
    wanted = row_of[src] >= 0
    s, d = src[wanted], dst[wanted]
    order = np.lexsort((d, s))  # neighbours in ascending id, grouped by node
    s, d = s[order], d[order]
    if len(s):
        first = np.searchsorted(s, s, side="left")
        slot = 1 + np.arange(len(s)) - first
        r = torch.as_tensor(row_of[s])
        sl = torch.as_tensor(slot)
        rows[r, sl, 0] = torch.as_tensor(1.0 / np.sqrt(d_tilde[s] * d_tilde[d]), dtype=torch.float32)
        rows[r, sl, 1] = 1.0
        rows[r, sl, 2:] = per_node[d]
    return rows


def present_edges(rows: torch.Tensor, graph: Graph) -> np.ndarray:
    """The canonical edges visible in ``rows``: each row's node (slot 0) and real neighbour slots matched back to
    node ids by their features (unique per node in any real-valued feature graph). For tests: proves which edges a
    set of rows carries, whatever their order."""
    f = graph.n_features
    feats = torch.as_tensor(graph.features, dtype=torch.float32)

    def ids_of(v: torch.Tensor) -> list[int]:
        return torch.nonzero((feats == v).all(dim=1)).reshape(-1).tolist()

    found = []
    for r in rows:
        for node in ids_of(r[0, 2:2 + f]):
            for slot in range(1, rows.shape[1]):
                if r[slot, 1] != 0:
                    found.extend((node, m) for m in ids_of(r[slot, 2:2 + f]) if m != node)
    return canonical_edges(np.asarray(found, dtype=np.int64)) if found else np.zeros((0, 2), np.int64)
