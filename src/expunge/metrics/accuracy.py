"""Accuracy family (tier 0): forget / retain / test accuracy, and for class requests the test accuracy on the
forgotten and on the kept classes.

acc(S) = (1/|S|) Σ_{x∈S} 1[argmax z(x) = y] (SalUn's RA/TA; Fan et al., ICLR 2024, arXiv 2310.12508). For random and
owner requests ``forget_acc`` is measured on the forget *training* examples. Gaps to the retrained model are added to
every record by the runner.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from expunge.metrics.base import EvalContext, Metric, MetricValue, register_metric
from expunge.metrics.functional.accuracy import accuracy
from expunge.metrics.functional.stats import proportion_se


class _SplitAccuracy(Metric):
    family = "accuracy"
    tasks = frozenset({"classification", "graph"})  # a graph's nodes are classified: node accuracy per split
    split: ClassVar[str]

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        return accuracy_value(ctx.logits(role, self.split), ctx.labels(self.split))


def accuracy_value(logits: np.ndarray, y: np.ndarray) -> MetricValue:
    acc = accuracy(logits, y)
    return MetricValue(acc, se=None if acc is None else proportion_se(acc, len(y)))


@register_metric
class ForgetAccuracy(_SplitAccuracy):
    name, split = "forget_acc", "forget"
    definition = "accuracy on the forget set (training examples to be forgotten); compare with retrain"


@register_metric
class RetainAccuracy(_SplitAccuracy):
    name, split, higher_is_better = "retain_acc", "retain", True
    definition = "accuracy on the retain set (training examples kept)"


@register_metric
class TestAccuracy(_SplitAccuracy):
    name, split, higher_is_better = "test_acc", "test", True
    definition = "accuracy on the whole test set (never trained on)"


class _TestClassAccuracy(Metric):
    family = "accuracy"
    forgotten: ClassVar[bool]

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        if not ctx.splits.forget_classes:
            return MetricValue(None, reason="not a class-forgetting request")
        mask = ctx.test_class_mask() if self.forgotten else ~ctx.test_class_mask()
        if not mask.any():
            return MetricValue(None, reason="no test example in these classes")
        return accuracy_value(ctx.logits(role, "test")[mask], ctx.labels("test")[mask])


@register_metric
class TestAccForgetClasses(_TestClassAccuracy):
    name, forgotten = "test_acc_forget_classes", True
    definition = "test accuracy on the forgotten classes (class requests; the retrained model scores 0)"


@register_metric
class TestAccRetainClasses(_TestClassAccuracy):
    name, forgotten, higher_is_better = "test_acc_retain_classes", False, True
    definition = "test accuracy on the classes kept (class requests)"


def per_class_accuracy(ctx: EvalContext, role: str, split: str) -> dict[int, float]:
    logits, y = ctx.logits(role, split), ctx.labels(split)
    return {int(c): accuracy(logits[y == c], y[y == c]) for c in np.unique(y)}
