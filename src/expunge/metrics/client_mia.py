"""Client-level membership family (tier 0): ``client_mia_auc`` — does the forgotten client's data still read as
trained on? The arrays and every choice are in :mod:`expunge.metrics.functional.client_mia` (groups of the forget
set's examples vs label-matched groups of test examples, scored by −mean task loss, ROC-AUC).

Defined for the ``federated`` task, where the forget set is whole clients (``owners:K``). Compare with the Retrain:
the oracle federation never saw the client, so its value is what "forgotten" looks like (≈ 0.5 on IID data; a
non-IID client can sit above 0.5 even there when its classes are learned from other clients).
"""

from __future__ import annotations

from expunge.metrics.base import EvalContext, Metric, MetricValue, register_metric
from expunge.metrics.functional.client_mia import client_mia_auc
from expunge.metrics.functional.stats import auc_se


@register_metric
class ClientMiaAuc(Metric):
    name, family, higher_is_better = "client_mia_auc", "client_mia", None
    tasks = frozenset({"federated"})
    definition = ("client-level MIA: ROC-AUC of groups of 20 forget-client examples vs label-matched test groups, "
                  "scored by −mean loss (0.5 = reads as unseen); compare with retrain")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        forget_y, test_y = ctx.labels("forget"), ctx.labels("test")
        forget = ctx.task.example_losses(ctx.logits(role, "forget"), forget_y)
        test = ctx.task.example_losses(ctx.logits(role, "test"), test_y)
        value, details = client_mia_auc(forget, forget_y, test, test_y, seed=ctx.seed)
        if value is None:
            return MetricValue(None, reason=str(details.get("reason", "no value")))
        n = int(details["independent_groups"])  # type: ignore[call-overload]  # the groups overlap: disjoint ones
        return MetricValue(value, details=details, se=auc_se(value, n, n))
