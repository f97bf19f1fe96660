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
