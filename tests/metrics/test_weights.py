"""weight_l2_to_original / weight_l2_to_retrain: known distances, None for self-comparison and layout mismatch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fakes_tier01 import lookup_dataset
from torch import nn

from expunge.data.request import Splits
from expunge.metrics.base import EvalContext, evaluate


def linear(w: list[float]) -> nn.Module:
    m = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([w]))
    return m


def ctx(models: dict[str, nn.Module]) -> EvalContext:
    ds = lookup_dataset([0, 1, 0], [1], 2)
    return EvalContext(ds, Splits.from_ids(ds, np.array([0])), models)


def test_known_answer_and_self_comparison():
    c = ctx({"unlearned": linear([3.0, 0.0]), "original": linear([0.0, 4.0]), "retrain": linear([0.0, 0.0])})
    res = evaluate(c, ["weight_l2_to_original", "weight_l2_to_retrain"])
    u = res["weight_l2_to_original"]["unlearned"]
    assert u.value == pytest.approx(5.0) and u.details["relative"] == pytest.approx(1.25) and u.se is None
    assert res["weight_l2_to_original"]["retrain"].value == pytest.approx(4.0)
    assert res["weight_l2_to_original"]["original"].value is None
    assert "itself" in res["weight_l2_to_original"]["original"].reason
    assert res["weight_l2_to_retrain"]["retrain"].value is None
    assert res["weight_l2_to_retrain"]["unlearned"].value == pytest.approx(3.0)
    assert res["weight_l2_to_retrain"]["unlearned"].details["relative"] is None  # the reference norm is 0


def test_different_layouts_are_not_comparable():
    c = ctx({"unlearned": nn.Linear(2, 1), "original": nn.Linear(2, 1, bias=False)})
    v = evaluate(c, ["weight_l2_to_original"], roles=("unlearned",))["weight_l2_to_original"]["unlearned"]
    assert v.value is None and "not comparable" in v.reason
