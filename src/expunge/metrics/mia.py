"""Population membership inference, loss feature (tier 0).

``mia_loss_auc`` / ``mia_loss_acc``: a logistic-regression attacker on the per-example cross-entropy loss separates
the forget set (label 1) from the test set (label 0). Sides are balanced by seeded subsampling to the smaller size,
then scored with 10-fold ``StratifiedShuffleSplit`` (test size 0.1, random_state = evaluation seed); we report the
mean cross-validated ROC-AUC and accuracy (spec/metrics.md 3.1, the NeurIPS'23 starting kit's attack). 0.5 means
the forget set looks like unseen data; compare with the retrained model's value, not with 0.5.
"""

from __future__ import annotations

from typing import ClassVar

from expunge.metrics.base import EvalContext, Metric, MetricValue, register_metric
from expunge.metrics.functional.mia import ce_loss, loss_lr_cv
from expunge.metrics.functional.stats import auc_se, proportion_se


class _LossLR(Metric):
    family = "mia_population"
    key: ClassVar[str]

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        forget = ce_loss(ctx.logits(role, "forget"), ctx.labels("forget"))
        test = ce_loss(ctx.logits(role, "test"), ctx.labels("test"))
        res = loss_lr_cv(forget, test, seed=ctx.seed)
        value, n = res.get(self.key), int(res.get("n_per_side") or 0)
        se = None
        if value is not None:
            se = auc_se(float(value), n, n) if self.key == "auc" else proportion_se(float(value), 2 * n)
        return MetricValue(None if value is None else float(value), reason=res.get("reason"),
                           details={k: v for k, v in res.items() if k != "reason"}, se=se)


@register_metric
class MiaLossAuc(_LossLR):
    name, key = "mia_loss_auc", "auc"
    definition = ("cross-validated ROC-AUC of a logistic-regression attack on the loss, forget (member) vs test, "
                  "balanced; compare with retrain")


@register_metric
class MiaLossAcc(_LossLR):
    name, key = "mia_loss_acc", "acc"
    definition = ("cross-validated accuracy of the same loss-LR attack (forget vs test, balanced); the NeurIPS'23 "
                  "starting kit's MIA score")
