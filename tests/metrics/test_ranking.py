"""Recall@K, NDCG@K and rank percentiles with hand-computed answers; masking; the rank membership test on models
that memorise vs models that never saw the forget set."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from expunge.data.interactions import interactions_dataset
from expunge.data.request import ForgetRequest
from expunge.metrics.base import EvalContext, evaluate
from expunge.metrics.functional.ranking import item_rank_percentiles, topk_recall_ndcg

SCORES = np.array([[0.9, 0.8, 0.7, 0.6, 0.5],
                   [0.1, 0.2, 0.3, 0.4, 0.5]])


def test_recall_ndcg_known_answers() -> None:
    # user 0: targets {1, 4}; top-2 = [0, 1] -> 1 hit at rank 1: recall 1/2, ndcg (1/log2 3) / (1 + 1/log2 3)
    recall, ndcg = topk_recall_ndcg(SCORES, [0, 0], [1, 4], [], [], k=2)
    assert recall[0] == pytest.approx(0.5)
    assert ndcg[0] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    # masking item 0 for user 0 moves item 1 to the top: 1 hit at rank 0 -> ndcg 1 / (1 + 1/log2 3)
    recall, ndcg = topk_recall_ndcg(SCORES, [0, 0], [1, 4], [0], [0], k=2)
    assert recall[0] == pytest.approx(0.5) and ndcg[0] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    # two users, one value each, in user order; a single target at the top: recall 1, ndcg 1
    recall, ndcg = topk_recall_ndcg(SCORES, [1, 0], [4, 0], [], [], k=1)
    assert recall.tolist() == [1.0, 1.0] and ndcg.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="masked"):
        topk_recall_ndcg(SCORES, [0], [1], [0], [1], k=2)


def test_ties_never_favour_the_target() -> None:
    flat = np.zeros((1, 5))
    recall, _ = topk_recall_ndcg(flat, [0], [4], [], [], k=2)  # stable order: items 0, 1 first
    assert recall[0] == 0.0
    assert item_rank_percentiles(flat, [0], [4], [], [])[0] == pytest.approx(0.5)


def test_rank_percentiles_known_answers() -> None:
    p = item_rank_percentiles(SCORES, [0, 0, 1], [0, 4, 4], [0], [1])
    # user 0, item 1 masked: item 0 is first of 4 candidates (0/3), item 4 last (3/3); user 1 item 4 first
    assert p.tolist() == pytest.approx([0.0, 1.0, 0.0])


class Fixed(torch.nn.Module):
    """A recommender returning a fixed score matrix (rows by user)."""

    def __init__(self, scores: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("s", torch.as_tensor(scores, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.s[x[:, 0]]


def test_metrics_on_a_memorising_and_a_blind_model() -> None:
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(20), 10)
    items = np.concatenate([rng.choice(40, 10, replace=False) for _ in range(20)])
    ds = interactions_dataset("t", users, items, item_names=[str(i) for i in range(40)], n_users=20)
    splits = ForgetRequest.parse("random:0.2").resolve(ds, seed=0)
    train, test = ds.train.x.numpy(), ds.test.x.numpy()
    memorise = rng.normal(size=(20, 40)) * 0.01
    memorise[train[:, 0], train[:, 1]] += 5.0          # every training interaction on top
    blind = memorise.copy()
    f = train[splits.forget]
    # never trained on: forget and test items get the same noise, below the retained items
    blind[f[:, 0], f[:, 1]] = rng.normal(size=len(f)) - 10
    blind[test[:, 0], test[:, 1]] = rng.normal(size=len(test)) - 10
    ctx = EvalContext(ds, splits, {"original": Fixed(memorise), "retrain": Fixed(blind)})
    res = evaluate(ctx, ["recall20_forget", "recall20_retain", "recall20_test", "mia_rank_auc"])
    assert res["recall20_forget"]["original"].value == 1.0 and res["recall20_forget"]["retrain"].value == 0.0
    assert res["recall20_retain"]["original"].value == 1.0  # forget items masked, retain all on top
    assert res["mia_rank_auc"]["original"].value == 1.0     # forget ranked above the same users' test items
    auc = res["mia_rank_auc"]["retrain"]
    assert abs(auc.value - 0.5) < 2.5 * auc.se  # members indistinguishable from the same users' test items
    test_recall = res["recall20_test"]["original"]  # 20 of ~32 unmasked candidates at random: about 0.6
    assert 0.3 < test_recall.value < 0.9 and test_recall.se is not None and test_recall.details["users"] == 20
