"""Edge-level measures of a node classifier on arrays: link scores from node embeddings, a link-stealing membership
score from posteriors, the AUC of deleted edges against non-edges, and the seeded non-edge sample they use.

References:
    - Link prediction from a GNN's node embeddings, score σ(z_u·z_v), and the AUC of deleted edges against sampled
      non-edges: GNNDelete, Cheng et al., ICLR 2023 (arXiv 2302.13406), mims-harvard/GNNDelete
      ``framework/trainer/base.py`` (its ``Df`` AUC); D2DGN (arXiv 2309.16173) reports the same AUC.
    - Membership of an edge read from the endpoints' posteriors: He, Jia, Backes, Gong, Zhang, "Stealing Links from
      Graph Neural Networks", USENIX Security 2021, unsupervised Attack-0 — the closer two nodes' posteriors (they
      found the correlation distance best), the likelier the link.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score

__all__ = ["link_scores", "pair_auc", "posterior_similarity", "sample_non_edges"]


def link_scores(embeddings: NDArray[np.float64], pairs: NDArray[np.int64]) -> NDArray[np.float64]:
    """σ(z_u · z_v) for each (u, v) row of ``pairs`` (node indices into ``embeddings``)."""
    z = np.asarray(embeddings, dtype=np.float64)
    p = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    dots = np.einsum("ij,ij->i", z[p[:, 0]], z[p[:, 1]])
    return 1.0 / (1.0 + np.exp(-np.clip(dots, -500, 500)))


def posterior_similarity(probs: NDArray[np.float64], pairs: NDArray[np.int64]) -> NDArray[np.float64]:
    """1 − correlation distance between the two endpoints' posteriors, i.e. their Pearson correlation (He et al.'s
    Attack-0 score: higher = likelier an edge). A constant posterior (zero variance) correlates 0 with anything."""
    q = np.asarray(probs, dtype=np.float64)
    p = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    a, b = q[p[:, 0]], q[p[:, 1]]
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denom = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return np.divide((a * b).sum(axis=1), denom, out=np.zeros(len(p)), where=denom > 0)


def pair_auc(positive: NDArray[np.float64], negative: NDArray[np.float64]) -> float | None:
    """ROC-AUC of scores of true pairs (``positive``) against non-pairs; None when either side is empty."""
    if len(positive) == 0 or len(negative) == 0:
        return None
    y = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    return float(roc_auc_score(y, np.r_[positive, negative]))


def sample_non_edges(n_nodes: int, edges: NDArray[np.int64], anchors: NDArray[np.int64],
                     rng: np.random.Generator) -> NDArray[np.int64]:
    """For each anchor u, one pair (u, w) with w ≠ u drawn uniformly among the nodes not linked to u in ``edges``
    (the full graph's): a non-edge sharing the deleted edge's endpoint, so the AUC compares links, not nodes."""
    e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    linked = set(map(tuple, np.sort(e, axis=1).tolist()))
    out = []
    for u in np.asarray(anchors, dtype=np.int64).tolist():
        while True:
            w = int(rng.integers(n_nodes))
            if w != u and (min(u, w), max(u, w)) not in linked:
                out.append((u, w))
                break
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)
