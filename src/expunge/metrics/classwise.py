"""Class-wise test accuracy (tier 0): the per-class picture that a single accuracy hides.

* ``classwise_acc_test`` — value = the *mean class accuracy* on the test set, (1/|C|) Σ_c acc_c over the classes c
  present in the test split, acc_c = (1/|T_c|) Σ_{x∈T_c} 1[argmax z(x) = c] (= balanced accuracy); ``details``
  holds ``per_class`` {c: acc_c} and ``n_per_class``. For class requests the forgotten classes are included (a
  retrained model scores 0 there), so compare with the Retrain.
* ``classwise_acc_test_min_retain_classes`` — the worst test accuracy over the classes *not* forgotten (every class
  for random / id requests): collateral damage concentrated on one class shows here before it moves the mean.

Standard errors: mean of independent class proportions, se = sqrt(Σ_c acc_c(1 − acc_c)/n_c)/|C|; the minimum uses
the binomial se of the worst class.
"""

from __future__ import annotations

import math

import numpy as np

from expunge.metrics.base import EvalContext, Metric, MetricValue, register_metric
from expunge.metrics.functional.accuracy import classwise_accuracy
from expunge.metrics.functional.stats import proportion_se


def _per_class(ctx: EvalContext, role: str) -> tuple[dict[int, float], dict[int, int]]:
    y = ctx.labels("test")
    accs = classwise_accuracy(ctx.logits(role, "test"), y, ctx.dataset.num_classes)
    counts = np.bincount(y.astype(np.int64), minlength=ctx.dataset.num_classes)
    return accs, {c: int(counts[c]) for c in accs}


@register_metric
class ClasswiseTestAcc(Metric):
    name, family = "classwise_acc_test", "accuracy"
    definition = ("mean over classes of the per-class test accuracy (balanced accuracy); details.per_class holds "
                  "each class's accuracy; compare with retrain")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        accs, ns = _per_class(ctx, role)
        if not accs:
            return MetricValue(None, reason="empty test split")
        k = len(accs)
        se = math.sqrt(sum(a * (1 - a) / ns[c] for c, a in accs.items())) / k
        return MetricValue(float(np.mean(list(accs.values()))), se=se,
                           details={"per_class": {str(c): a for c, a in accs.items()},
                                    "n_per_class": {str(c): n for c, n in ns.items()}})


@register_metric
class ClasswiseTestAccMinRetain(Metric):
    name, family, higher_is_better = "classwise_acc_test_min_retain_classes", "accuracy", True
    definition = ("lowest per-class test accuracy among the classes not forgotten (all classes for random/id "
                  "requests): collateral damage on a single class")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        accs, ns = _per_class(ctx, role)
        kept = {c: a for c, a in accs.items() if c not in set(ctx.splits.forget_classes)}
        if not kept:
            return MetricValue(None, reason="no test example of a kept class")
        worst = min(kept, key=lambda c: (kept[c], c))
        return MetricValue(kept[worst], se=proportion_se(kept[worst], ns[worst]),
                           details={"class": worst, "n": ns[worst]})
