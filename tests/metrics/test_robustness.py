"""quant_recovery_int8 / prune_recovery_30pct on hand-set linear models with known compressed behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fakes_tier01 import LookupLogits, registered
from torch import nn

from expunge.data.datasets import from_arrays
from expunge.data.request import Splits
from expunge.metrics.base import EvalContext, evaluate
from expunge.metrics.robustness import prune_global_l1, quantize_int8

NAMES = registered(family="robustness")


def lin(w: tuple[float, float], b: tuple[float, float]) -> nn.Linear:
    m = nn.Linear(1, 2)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[w[0]], [w[1]]]))
        m.bias.copy_(torch.tensor(b))
    return m


def make_ctx(models: dict[str, nn.Module]) -> EvalContext:
    # forget: x = 1 (label 0), retain: x = -1 (label 1); test: both
    ds = from_arrays("lin", x_train=np.r_[np.ones(5), -np.ones(10)][:, None], y_train=np.r_[np.zeros(5), np.ones(10)],
                     x_test=np.array([[1.0], [-1.0]]), y_test=np.array([0, 1]), class_names=("a", "b"))
    return EvalContext(ds, Splits.from_ids(ds, np.arange(5)), models)


def test_known_answers():
    # O = [[1], [0]]: forget right. U adds a small weight 0.5 and bias 0.6 to class 1: forget wrong (1.0 < 1.1).
    # 30 % global pruning of the 2 weights removes the 0.5 -> (1.0, 0.6): forget right again -> recovery 1.
    # int8 keeps 0.5 (to 0.504) -> still wrong -> recovery 0.
    u = lin((1.0, 0.5), (0.0, 0.6))
    before = u.weight.detach().clone()
    ctx = make_ctx({"unlearned": u, "original": lin((1.0, 0.0), (0.0, 0.0)), "retrain": lin((0.0, 1.0), (0.0, 0.0))})
    res = evaluate(ctx, NAMES)
    assert res["prune_recovery_30pct"]["unlearned"].value == pytest.approx(1.0)
    assert res["quant_recovery_int8"]["unlearned"].value == pytest.approx(0.0)
    assert res["quant_recovery_int8"]["unlearned"].details["backend"]
    assert res["prune_recovery_30pct"]["retrain"].value == pytest.approx(0.0)  # pruned a zero weight: no change
    for name in NAMES:
        v = res[name]["original"]
        assert v.value is None and "nothing was forgotten" in v.reason
    torch.testing.assert_close(u.weight.detach(), before)  # compression works on copies


def test_helpers():
    m = nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 10))
    pruned, n = prune_global_l1(m, 0.3)
    zeros = sum(int((p == 0).sum()) for name, p in pruned.named_parameters() if name.endswith("weight"))
    assert n == 2 and zeros == 60 and all(not hasattr(mod, "weight_orig") for mod in pruned.modules())
    q, n_q = quantize_int8(m)
    x = torch.randn(4, 10)
    assert n_q == 2 and torch.allclose(q(x), m(x), atol=0.05)


def test_model_without_layers():
    table = np.zeros((17, 2))
    ctx = make_ctx({"unlearned": LookupLogits(table), "original": LookupLogits(np.c_[np.ones(17), np.zeros(17)])})
    res = evaluate(ctx, NAMES, roles=("unlearned",))
    assert "no layer to quantize" in res["quant_recovery_int8"]["unlearned"].reason
    assert "no layer to prune" in res["prune_recovery_30pct"]["unlearned"].reason
