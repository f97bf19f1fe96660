"""Output distances to the Retrain / Original (spec/metrics.md 2.1, 2.3, 2.4) on exact probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from fakes_tier01 import lookup_ctx

from expunge.metrics.base import MetricValue, evaluate

Y_TRAIN, Y_TEST = [0, 0, 1, 1], [0, 1, 0]
HOT0, HOT1 = np.array([60.0, -60.0]), np.array([-60.0, 60.0])  # one-hot to 1e-52


def test_activation_distances_and_agreement_known_answers():
    u = np.stack([HOT0, HOT0, HOT0, HOT0, HOT0, HOT0, HOT1])  # forget = train ids 0, 1
    r = np.stack([HOT1, HOT1, HOT0, HOT0, HOT0, HOT1, HOT1])
    ctx = lookup_ctx(Y_TRAIN, Y_TEST, [0, 1], 2, {"unlearned": u, "retrain": r})
    res = evaluate(ctx, ["activation_distance_l2_forget", "activation_distance_l1_forget", "agreement_top1_test",
                         "agreement_top1_forget", "activation_distance_l2_test"])
    val = {k: v["unlearned"].value for k, v in res.items()}
    assert val["activation_distance_l2_forget"] == pytest.approx(np.sqrt(2))
    assert val["activation_distance_l1_forget"] == pytest.approx(2.0)
    assert val["agreement_top1_test"] == pytest.approx(2 / 3)  # spec 2.4: 2 of 3
    assert val["agreement_top1_forget"] == 0.0
    assert val["activation_distance_l2_test"] == pytest.approx(np.sqrt(2) / 3)
    assert res["activation_distance_l1_forget"]["retrain"].value == 0.0
    assert res["agreement_top1_forget"]["retrain"].value == 1.0


def test_symmetric_kl_and_js_to_original_known_answers():
    half, skew = np.log([0.5, 0.5]), np.log([0.9, 0.1])
    u = np.stack([half] * 7)
    r = np.stack([skew] * 7)
    o = np.stack([HOT0] * 7)
    ctx = lookup_ctx(Y_TRAIN, Y_TEST, [0, 1], 2, {"unlearned": u, "retrain": r, "original": o})
    res = evaluate(ctx, ["symkl_to_retrain_forget", "js_to_original_forget", "js_to_original_test"])
    kl_pq = 0.5 * np.log(0.5 / 0.9) + 0.5 * np.log(0.5 / 0.1)
    kl_qp = 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)
    assert res["symkl_to_retrain_forget"]["unlearned"].value == pytest.approx(kl_pq + kl_qp)  # 0.878871
    assert res["js_to_original_forget"]["unlearned"].value == pytest.approx(0.311278, abs=1e-6)  # spec 2.1
    assert res["js_to_original_test"]["original"].value == 0.0
    assert res["symkl_to_retrain_forget"]["unlearned"].se == 0.0  # every example identical


def test_missing_reference():
    ctx = lookup_ctx(Y_TRAIN, Y_TEST, [0, 1], 2, {"unlearned": np.stack([HOT0] * 7)})
    res = evaluate(ctx, ["symkl_to_retrain_test", "js_to_original_forget"], roles=("unlearned",))
    assert res["symkl_to_retrain_test"]["unlearned"] == MetricValue(None, reason="no retrain model")
    assert res["js_to_original_forget"]["unlearned"] == MetricValue(None, reason="no original model")
