"""classwise_acc_test / classwise_acc_test_min_retain_classes on exact per-example logits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fakes_tier01 import lookup_ctx, registered

from expunge.metrics.base import evaluate

NAMES = registered(module="classwise")
Y_TRAIN = [0, 1, 2, 0, 1, 2]
Y_TEST = [0, 0, 1, 1, 1, 2]


def table(test_preds: list[int]) -> np.ndarray:
    rows = [np.eye(3)[y] * 5 for y in Y_TRAIN] + [np.eye(3)[p] * 5 for p in test_preds]
    return np.asarray(rows)


def test_known_answer_mean_of_class_accuracies():
    # class 0: 1/2 right, class 1: 3/3, class 2: 0/1  ->  mean 0.5 (plain accuracy would be 4/6)
    ctx = lookup_ctx(Y_TRAIN, Y_TEST, [2], 3, {"unlearned": table([0, 1, 1, 1, 1, 0])}, forget_classes=(2,))
    res = evaluate(ctx, NAMES, roles=("unlearned",))
    v = res["classwise_acc_test"]["unlearned"]
    assert v.value == pytest.approx(0.5)
    assert v.details["per_class"] == {"0": 0.5, "1": 1.0, "2": 0.0}
    assert v.se == pytest.approx(math.sqrt(0.25 / 2) / 3)
    worst = res["classwise_acc_test_min_retain_classes"]["unlearned"]
    assert worst.value == 0.5 and worst.details["class"] == 0  # class 2 is forgotten: not counted


def test_min_over_all_classes_for_id_requests():
    ctx = lookup_ctx(Y_TRAIN, Y_TEST, [2], 3, {"unlearned": table([0, 1, 1, 1, 1, 0])})
    worst = evaluate(ctx, ["classwise_acc_test_min_retain_classes"], roles=("unlearned",))
    assert worst["classwise_acc_test_min_retain_classes"]["unlearned"].value == 0.0
