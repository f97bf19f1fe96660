"""A collapsed model (NaN outputs, as an over-aggressive method can leave) gets None with a reason from every tier-0
metric — never NaN, never an exception that would abort a benchmark."""

from __future__ import annotations

import copy
import math

import torch

from expunge.metrics.base import evaluate


def test_nan_model_gives_none_with_reason_not_a_crash(prepared_class3):
    prep = prepared_class3
    broken = copy.deepcopy(prep.original.model)
    with torch.no_grad():
        for p in broken.parameters():
            p.fill_(float("nan"))
    ctx = prep.eval_ctx.with_model("unlearned", broken)
    results = evaluate(ctx, tier=0, roles=("unlearned",))
    assert results, "tier 0 has metrics"
    for name, by_role in results.items():
        v = by_role["unlearned"]
        assert v.value is None or math.isfinite(v.value), (name, v)
    assert results["forget_acc"]["unlearned"].value is None
    assert "not finite" in results["forget_acc"]["unlearned"].reason
    assert "not finite" in results["js_to_retrain_forget"]["unlearned"].reason


def test_a_metric_that_computes_nan_gives_none_with_a_reason(prepared_class3):
    """The metric layer's last guard: whatever a metric's compute returns, nan/inf is never reported as a value."""
    from expunge.metrics.base import Metric, MetricValue

    class Broken(Metric):
        name, family, definition = "broken", "test", "returns nan"

        def compute(self, ctx, role):
            return MetricValue(float("nan"), details={"why": "test"})

    v = Broken()(prepared_class3.eval_ctx, "original")
    assert v.value is None and "non-finite (nan)" in v.reason and v.details == {"why": "test"}
