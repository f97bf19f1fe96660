"""Recommendation metrics (tier 0, ``recsys`` task): Recall@20 and NDCG@20 on the forget, retain and test
interactions, and a rank-based membership test on the forgotten interactions.

Evaluation protocol (full ranking, K = 20 as LightGCN and the BPR-unlearning papers report; MMRecUN, Sinha et al.,
arXiv 2405.15328, reports Recall@K on forget and retain interactions): each model scores every item for every user;
for each split, its interactions are the targets and **the training interactions of the other sets are masked**
(ranked below every item), as the field masks a user's training items when testing:

* ``*_forget`` — targets: the forget interactions; masked: the retain interactions. An Original ranks the forget
  items high (it trained on them); the Retrain ranks them like unseen items; *closer to the Retrain* is better.
* ``*_retain`` — targets: the retain interactions; masked: the forget interactions. Higher is better (utility on
  what was kept).
* ``*_test`` — targets: the held-out test interactions; masked: every training interaction (forget and retain).
  Higher is better (generalisation).

Test interactions are never masked in the forget/retain evaluations (they are not training interactions; masking
them would hide what the model generalised). The mask is the same for every model, so the Original, the Retrain and
an unlearned model are ranked over the same candidate items.

``mia_rank_auc`` — membership test on the forgotten interactions: members are the forget interactions, non-members
the test interactions *of the same users* (all test interactions when those users have none); the attack feature is
the item's rank percentile among the user's items (retain interactions masked, ties half), and the value is the
ROC-AUC of "ranked higher ⇒ member" (Hanley-McNeil standard error). The Retrain scores ≈ 0.5 on random and user
requests (both sides are unseen items of the same users); an Original that memorised its training set scores near 1.
Closer to the Retrain is better.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from expunge.metrics.base import EvalContext, Metric, MetricValue, register_metric
from expunge.metrics.functional.mia import mia_auc
from expunge.metrics.functional.ranking import item_rank_percentiles, mean_se, topk_recall_ndcg
from expunge.metrics.functional.stats import auc_se
from expunge.models.inference import predict_logits

RECSYS = frozenset({"recsys"})
K = 20
MASKED_BY: dict[str, tuple[str, ...]] = {"forget": ("retain",), "retain": ("forget",), "test": ("forget", "retain")}


def score_matrix(ctx: EvalContext, role: str) -> np.ndarray:
    """Every item's score for every user (users × items, float64) of the ``role`` model, cached per model."""

    def compute() -> np.ndarray:
        import torch

        n_users = int(ctx.dataset.model_kwargs["n_users"])
        x = torch.stack([torch.arange(n_users), torch.zeros(n_users, dtype=torch.long)], dim=1)
        return predict_logits(ctx.models[role], x, ctx.batch_size).double().numpy()

    return ctx.cached(("recsys_scores",), compute, role=role, local=True)


def split_pairs(ctx: EvalContext, *splits: str) -> tuple[np.ndarray, np.ndarray]:
    """Users and items of the interactions of ``splits`` (concatenated)."""
    xs = [ctx.split_tensors(s)[0].numpy() for s in splits]
    x = np.concatenate(xs) if xs else np.zeros((0, 2), np.int64)
    return x[:, 0].astype(np.int64), x[:, 1].astype(np.int64)


def _finite(scores: np.ndarray, role: str) -> MetricValue | None:
    if not np.isfinite(scores).all():
        return MetricValue(None, reason=f"the {role} model's scores are not finite: a collapsed model")
    return None


class _TopK(Metric):
    family = "ranking"
    tasks = RECSYS
    split: ClassVar[str]
    which: ClassVar[int]  # 0 recall, 1 ndcg

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        scores = score_matrix(ctx, role)
        if (bad := _finite(scores, role)) is not None:
            return bad

        def per_user() -> tuple[np.ndarray, np.ndarray]:
            tu, ti = split_pairs(ctx, self.split)
            mu, mi = split_pairs(ctx, *MASKED_BY[self.split])
            return topk_recall_ndcg(scores, tu, ti, mu, mi, K)

        values = ctx.cached(("recsys_topk", self.split), per_user, role=role, local=True)[self.which]
        mean, se = mean_se(values)
        if mean is None:
            return MetricValue(None, reason=f"no {self.split} interaction")
        return MetricValue(mean, se=se, details={"users": len(values), "k": K,
                                                  "masked": "+".join(MASKED_BY[self.split])})


def _topk(name: str, split: str, which: int, better: bool | None, definition: str) -> type[_TopK]:
    cls = type(name, (_TopK,), {"name": name, "split": split, "which": which, "higher_is_better": better,
                                "definition": definition, "__doc__": definition, "__module__": __name__})
    return register_metric(cls)  # type: ignore[return-value]


_MASK_TEXT = {"forget": "retain interactions masked", "retain": "forget interactions masked",
              "test": "all training interactions masked"}
for _split, _better in (("forget", None), ("retain", True), ("test", True)):
    _topk(f"recall20_{_split}", _split, 0, _better,
          f"Recall@20 of the {_split} interactions, mean over their users ({_MASK_TEXT[_split]})"
          + ("; compare with retrain" if _better is None else ""))
    _topk(f"ndcg20_{_split}", _split, 1, _better,
          f"NDCG@20 of the {_split} interactions, mean over their users ({_MASK_TEXT[_split]})"
          + ("; compare with retrain" if _better is None else ""))


@register_metric
class MiaRankAuc(Metric):
    name, family, tasks = "mia_rank_auc", "ranking", RECSYS
    definition = ("ROC-AUC of a rank attack: forget interactions (members) vs the same users' test interactions, "
                  "feature = the item's rank percentile for its user (retain masked); compare with retrain")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        scores = score_matrix(ctx, role)
        if (bad := _finite(scores, role)) is not None:
            return bad
        fu, fi = split_pairs(ctx, "forget")
        tu, ti = split_pairs(ctx, "test")
        same = np.isin(tu, fu)
        scope = "same users"
        if same.any():
            tu, ti = tu[same], ti[same]
        else:
            scope = "all test users (the forget users have no test interaction)"
        mu, mi = split_pairs(ctx, "retain")
        members = -item_rank_percentiles(scores, fu, fi, mu, mi)
        nonmembers = -item_rank_percentiles(scores, tu, ti, mu, mi)
        auc = mia_auc(members, nonmembers)
        if auc is None:
            return MetricValue(None, reason="no forget or no test interaction to compare")
        return MetricValue(auc, se=auc_se(auc, len(members), len(nonmembers)),
                           details={"members": len(members), "nonmembers": len(nonmembers), "nonmember_scope": scope})
