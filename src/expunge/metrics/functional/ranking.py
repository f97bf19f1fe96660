"""Top-K ranking metrics of a recommender's score matrix (pure NumPy): Recall@K, NDCG@K and item ranks.

The full-ranking protocol of BPR/LightGCN evaluations (He et al., "LightGCN", SIGIR 2020; reference
gusye1234/LightGCN-PyTorch ``Procedure.py:Test`` and ``utils.py:RecallPrecision_ATk`` / ``NDCGatK_r``): every item
is ranked for each user, the pairs in ``mask`` (interactions the evaluation must not count: a user's training items
when testing) are pushed below all others, and the user's ``target`` items are looked for in the top K.

* Recall@K (user u) = |top-K ∩ targets_u| / |targets_u| — LightGCN's definition (not / min(K, |targets_u|)).
* NDCG@K (user u) = Σ_{r<K} hit_r / log2(r + 2), divided by the same sum for the ideal ranking of min(K, |targets_u|)
  hits.
* Both are averaged over the users with at least one target; their standard error is over those users.
* Ties: a stable sort on −score, so equal scores are ranked by item index (a constant model gets a fixed,
  score-independent ranking, never a favourable one).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def _masked(scores: ArrayLike, mask_users: ArrayLike, mask_items: ArrayLike) -> NDArray[np.float64]:
    s = np.array(scores, dtype=np.float64)  # a copy: the caller's (cached) matrix is never changed
    s[np.asarray(mask_users, np.int64), np.asarray(mask_items, np.int64)] = -np.inf
    return s


def topk_recall_ndcg(scores: ArrayLike, target_users: ArrayLike, target_items: ArrayLike, mask_users: ArrayLike,
                     mask_items: ArrayLike, k: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-user Recall@K and NDCG@K (one value per distinct user of ``target_users``, in increasing user order).

    ``scores`` is (users, items); ``target_*`` and ``mask_*`` are aligned arrays of (user, item) pairs. A target pair
    that is also masked raises :class:`ValueError` (it could never be found)."""
    tu, ti = np.asarray(target_users, np.int64), np.asarray(target_items, np.int64)
    if tu.size == 0:
        return np.zeros(0), np.zeros(0)
    s = _masked(scores, mask_users, mask_items)
    if np.isneginf(s[tu, ti]).any():
        raise ValueError("a target (user, item) pair is also masked")
    users, row = np.unique(tu, return_inverse=True)
    targets = np.zeros((len(users), s.shape[1]), dtype=bool)
    targets[row, ti] = True
    k = min(int(k), s.shape[1])
    top = np.argsort(-s[users], axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(targets, top, axis=1).astype(np.float64)
    n_targets = targets.sum(axis=1)
    recall = hits.sum(axis=1) / n_targets
    discount = 1.0 / np.log2(np.arange(k) + 2.0)
    dcg = hits @ discount
    idcg = np.cumsum(discount)[np.minimum(n_targets, k) - 1]
    return recall, dcg / idcg


def item_rank_percentiles(scores: ArrayLike, users: ArrayLike, items: ArrayLike, mask_users: ArrayLike,
                          mask_items: ArrayLike) -> NDArray[np.float64]:
    """For each (user, item) pair: the share of the user's unmasked items that score strictly higher, plus half of
    those that tie (0 = ranked first, ~0.5 = a random position, 1 = last). Masked items are not counted."""
    u, i = np.asarray(users, np.int64), np.asarray(items, np.int64)
    if u.size == 0:
        return np.zeros(0)
    s = _masked(scores, mask_users, mask_items)
    rows = s[u]
    target = rows[np.arange(len(u)), i][:, None]
    valid = np.isfinite(rows)
    above = ((rows > target) & valid).sum(axis=1)
    ties = ((rows == target) & valid).sum(axis=1) - 1  # the item itself
    others = np.maximum(valid.sum(axis=1) - 1, 1)
    return (above + 0.5 * ties) / others


def mean_se(values: ArrayLike) -> tuple[float | None, float | None]:
    """Mean and standard error (ddof 1; None below two values) of per-user values; (None, None) when empty."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return None, None
    return float(v.mean()), (float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else None)
