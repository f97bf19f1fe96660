"""Tier-0 metric classes on known models: values side by side for Original, Retrain and a fixed-output model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from expunge.metrics.base import METRICS, EvalContext, MetricValue, evaluate


class FixedLogits(nn.Module):
    """Predicts class `label` with confidence set by `margin` for every input."""

    def __init__(self, num_classes: int, label: int, margin: float) -> None:
        super().__init__()
        self.num_classes, self.label, self.margin = num_classes, label, margin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(x), self.num_classes)
        out[:, self.label] = self.margin
        return out


def test_retrain_against_itself(prepared_class3):
    b = prepared_class3.baseline
    assert b["js_to_retrain_forget"]["retrain"].value == 0.0
    assert b["js_to_retrain_forget"]["original"].value > 0.5  # the original is confident on class 3, the oracle not
    assert b["forget_acc"]["retrain"].value == 0.0 and b["forget_acc"]["original"].value > 0.9
    assert b["test_acc_retain_classes"]["retrain"].value > 0.85


def test_fixed_model_known_values(prepared_class3):
    prep = prepared_class3
    ctx = prep.eval_ctx.with_model("unlearned", FixedLogits(10, 3, 50.0))
    res = evaluate(ctx, ["forget_acc", "retain_acc", "test_acc", "test_acc_forget_classes"], roles=("unlearned",))
    y_test = ctx.labels("test")
    assert res["forget_acc"]["unlearned"].value == 1.0  # everything is "3"
    assert res["retain_acc"]["unlearned"].value == 0.0
    assert res["test_acc"]["unlearned"].value == pytest.approx(float(np.mean(y_test == 3)))
    assert res["test_acc_forget_classes"]["unlearned"].value == 1.0


def test_mia_constant_model_has_no_signal(prepared_class3):
    ctx = prepared_class3.eval_ctx.with_model("unlearned", FixedLogits(10, 0, 1.0))
    res = evaluate(ctx, ["mia_loss_auc"], roles=("unlearned",))["mia_loss_auc"]["unlearned"]
    # forget losses are all one value (class 3 predicted as 0), test losses take two values: AUC is defined
    assert res.value is not None and 0.0 <= res.value <= 1.0


def test_missing_reference_gives_none_with_reason(prepared_class3):
    prep = prepared_class3
    ctx = EvalContext(prep.dataset, prep.splits, {"unlearned": prep.original.model})
    res = evaluate(ctx, ["js_to_retrain_forget"], roles=("unlearned",))
    v = res["js_to_retrain_forget"]["unlearned"]
    assert v == MetricValue(None, reason="no retrain model")


def test_class_metrics_on_random_request_are_none(prepared_random):
    v = prepared_random.baseline["test_acc_forget_classes"]["original"]
    assert v.value is None and "not a class" in v.reason


def test_every_metric_is_described():
    for _, cls in METRICS.items():
        d = cls.describe()
        assert d["definition"] and d["tier"] in (0, 1, 2)
