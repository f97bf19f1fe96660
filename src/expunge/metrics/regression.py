"""Regression metrics (tier 0): the error of the model on each split, and how far its predictions are from the
Retrain's.

The error-based evaluation of Tarun et al., "Deep Regression Unlearning", ICML 2023 (arXiv 2210.08196): the forget
error should match the Retrain's (not be as low as the Original's, which trained on it, nor arbitrarily high — an
unlearned model that predicts garbage on the forget set is as distinguishable from a retrain as one that remembers),
while the retain and test errors stay low.

* ``forget_mse`` / ``retain_mse`` / ``test_mse`` — mean over the split of (ŷ − y)², averaged over outputs for
  multi-output targets: the training loss of the ``regression`` task. Forget: closer to the Retrain is better;
  retain and test: lower is better.
* ``forget_mae`` / ``retain_mae`` / ``test_mae`` — the same with |ŷ − y| (the paper's L1 error), in target units.
* ``mse_to_retrain_forget`` / ``mse_to_retrain_test`` — mean (ŷ − ŷ_Retrain)² over the split: the regression
  counterpart of ``js_to_retrain_<split>``. Equal forget MSEs can hide different predictions (errors of opposite
  sign, or on different examples); this cannot. The Retrain scores 0; lower is better.

Standard errors: s/√n of the per-example values (ddof 1), over the examples of the split for the fixed model. The
membership attacks on the squared error (``mia_loss_auc`` ...) are the task-generic ones of
:mod:`expunge.metrics.mia`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np

from expunge.metrics.base import EvalContext, Metric, MetricValue, register_metric
from expunge.metrics.functional.regression import absolute_errors, mean_and_se, squared_differences, squared_errors

REGRESSION = frozenset({"regression"})


def _value(per_example: np.ndarray) -> MetricValue:
    mean, se = mean_and_se(per_example)
    if mean is None:
        return MetricValue(None, reason="empty split")
    return MetricValue(mean, se=se, details={"n": len(per_example)})


class _SplitError(Metric):
    family = "regression"
    tasks = REGRESSION
    split: ClassVar[str]
    errors: ClassVar[Callable[[np.ndarray, np.ndarray], np.ndarray]]

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        return _value(type(self).errors(ctx.logits(role, self.split), ctx.labels(self.split)))


@register_metric
class ForgetMSE(_SplitError):
    name, split, errors = "forget_mse", "forget", squared_errors
    definition = "mean squared error on the forget set (training examples to be forgotten); compare with retrain"


@register_metric
class RetainMSE(_SplitError):
    name, split, errors, higher_is_better = "retain_mse", "retain", squared_errors, False
    definition = "mean squared error on the retain set (training examples kept)"


@register_metric
class TestMSE(_SplitError):
    name, split, errors, higher_is_better = "test_mse", "test", squared_errors, False
    definition = "mean squared error on the test set (never trained on)"


@register_metric
class ForgetMAE(_SplitError):
    name, split, errors = "forget_mae", "forget", absolute_errors
    definition = "mean absolute error on the forget set; compare with retrain"


@register_metric
class RetainMAE(_SplitError):
    name, split, errors, higher_is_better = "retain_mae", "retain", absolute_errors, False
    definition = "mean absolute error on the retain set"


@register_metric
class TestMAE(_SplitError):
    name, split, errors, higher_is_better = "test_mae", "test", absolute_errors, False
    definition = "mean absolute error on the test set"


class _MSEToRetrain(Metric):
    family = "regression"
    tasks = REGRESSION
    needs = frozenset({"retrain"})
    higher_is_better = False
    split: ClassVar[str]

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        return _value(squared_differences(ctx.logits(role, self.split), ctx.logits("retrain", self.split)))


@register_metric
class MSEToRetrainForget(_MSEToRetrain):
    name, split = "mse_to_retrain_forget", "forget"
    definition = "mean squared difference of the predictions to the retrained model's on the forget set (0 = same)"


@register_metric
class MSEToRetrainTest(_MSEToRetrain):
    name, split = "mse_to_retrain_test", "test"
    definition = "mean squared difference of the predictions to the retrained model's on the test set (0 = same)"
