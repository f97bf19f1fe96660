"""Margin summaries (tier 0): the distribution of φ = z_y − logsumexp_{j≠y} z_j (logit-scaled confidence, the LiRA
statistic of Carlini et al., S&P 2022, arXiv 2112.03570) on the forget and test sets.

* ``margin_forget_median`` / ``margin_test_median`` — median φ over the split; ``details`` hold the 5/25/50/75/95 %
  quantiles, mean, std and n (:func:`expunge.metrics.functional.margins.margin_summary`).
* ``margin_median_gap_forget_test`` — median φ(F) − median φ(T). A model that memorised F has a positive gap; after
  random-example forgetting the Retrain sits near 0 (F looks unseen), after class forgetting it is negative (the
  forgotten class is misclassified). Compare with the Retrain.

Standard errors: distribution-free order-statistic se of the median (:func:`median_se`), added in quadrature for the
gap. Every value is in nats of odds (φ = log-odds of the true class).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from expunge.metrics.base import EvalContext, Metric, MetricValue, register_metric
from expunge.metrics.functional.lira import logit_scaled_confidence
from expunge.metrics.functional.margins import margin_summary, median_se


def margins(ctx: EvalContext, role: str, split: str) -> np.ndarray:
    z, y = ctx.logits(role, split), ctx.labels(split)
    if len(y) == 0:
        return np.zeros(0)
    return logit_scaled_confidence(z, y.astype(np.int64))


class _SplitMedian(Metric):
    family = "margins"
    split: ClassVar[str]

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        phi = margins(ctx, role, self.split)
        if len(phi) == 0:
            return MetricValue(None, reason=f"empty {self.split} split")
        summary = margin_summary(phi)
        return MetricValue(summary["p50"], se=median_se(phi), details=summary)


@register_metric
class MarginForgetMedian(_SplitMedian):
    name, split = "margin_forget_median", "forget"
    definition = ("median logit-scaled confidence phi = z_y - logsumexp_{j!=y} z_j on the forget set (details: "
                  "quantiles); compare with retrain")


@register_metric
class MarginTestMedian(_SplitMedian):
    name, split = "margin_test_median", "test"
    definition = "median logit-scaled confidence phi on the test set (details: quantiles)"


@register_metric
class MarginMedianGap(Metric):
    name, family = "margin_median_gap_forget_test", "margins"
    definition = ("median phi on the forget set minus median phi on the test set: > 0 = forget set still fit "
                  "better than unseen data; compare with retrain")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        f, t = margins(ctx, role, "forget"), margins(ctx, role, "test")
        if len(f) == 0 or len(t) == 0:
            return MetricValue(None, reason="empty forget or test split")
        se_f, se_t = median_se(f), median_se(t)
        se = None if se_f is None or se_t is None else float(np.hypot(se_f, se_t))
        return MetricValue(float(np.median(f) - np.median(t)), se=se,
                           details={"forget_median": float(np.median(f)), "test_median": float(np.median(t))})
