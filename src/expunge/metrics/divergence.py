"""Output divergence to the retrained model (tier 0 given the oracle).

``js_to_retrain_<split>``: mean over the split's examples of the Jensen–Shannon divergence, in bits (∈ [0, 1]), between
the softmax outputs of the evaluated model and of the retrained oracle on the same input (Lin, IEEE Trans. Inf. Theory
1991). The oracle scores 0 against itself. Unlike the Bad-Teacher/SSD reference ``JSDiv``
(vikram2000b/bad-teaching-unlearning ``metrics.py``) this is the true JS divergence (that code computes a
KL(m‖p)-direction term averaged over N·C elements).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from expunge.metrics.base import EvalContext, Metric, MetricValue, register_metric
from expunge.metrics.functional.divergence import js_divergence, softmax


class _JSToRetrain(Metric):
    family = "divergence"
    tasks = frozenset({"classification", "graph"})  # class posteriors of images or of a graph's nodes
    needs = frozenset({"retrain"})
    higher_is_better = False
    split: ClassVar[str]

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        p = softmax(ctx.logits(role, self.split))
        q = softmax(ctx.logits("retrain", self.split))
        if len(p) == 0:
            return MetricValue(None, reason=f"empty {self.split} split")
        js = js_divergence(p, q, base=2)
        return MetricValue(float(js.mean()), se=float(js.std(ddof=1) / np.sqrt(len(js))) if len(js) > 1 else None)


@register_metric
class JSToRetrainForget(_JSToRetrain):
    name, split = "js_to_retrain_forget", "forget"
    definition = "mean Jensen-Shannon divergence (bits) to the retrained model's outputs on the forget set"


@register_metric
class JSToRetrainTest(_JSToRetrain):
    name, split = "js_to_retrain_test", "test"
    definition = "mean Jensen-Shannon divergence (bits) to the retrained model's outputs on the test set"
