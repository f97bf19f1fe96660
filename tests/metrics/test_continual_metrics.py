"""Continual measures: GEM's ACC / BWT known answers on hand-made accuracy matrices, and the metrics' reading of a
stream's state (kept / removed classes, learning-time accuracies; None with a reason without a stream)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from expunge.data.datasets import load_dataset
from expunge.data.request import ForgetRequest
from expunge.metrics.base import EvalContext
from expunge.metrics.continual import (
    EXTRAS_KEY,
    ContinualAverageAccuracy,
    ContinualBackwardTransfer,
    ContinualRemovedAccuracy,
    StreamState,
    per_class_counts,
    pooled,
)
from expunge.metrics.functional.continual import average_accuracy, backward_transfer

NAN = math.nan


def test_backward_transfer_and_average_accuracy_known_answers():
    r = [[0.9, NAN, NAN],
         [0.7, 0.8, NAN],
         [0.6, 0.5, 0.95]]
    assert backward_transfer(r) == pytest.approx(((0.6 - 0.9) + (0.5 - 0.8)) / 2)  # -0.3
    assert average_accuracy(r) == pytest.approx((0.6 + 0.5 + 0.95) / 3)
    # a task no longer kept (NaN now) leaves both sums; the last task never enters BWT
    r[2][0] = NAN
    assert backward_transfer(r) == pytest.approx(0.5 - 0.8)
    assert average_accuracy(r) == pytest.approx((0.5 + 0.95) / 2)
    assert backward_transfer([[0.8]]) is None and average_accuracy([[0.8]]) == pytest.approx(0.8)
    assert backward_transfer([[0.5, NAN], [0.9, 0.7]]) == pytest.approx(0.4)  # positive transfer
    with pytest.raises(ValueError, match="square"):
        backward_transfer(np.zeros((2, 3)))


def test_per_class_counts_and_pooled():
    logits = np.eye(3)[[0, 1, 1, 2, 0]]  # predictions 0 1 1 2 0
    y = np.array([0, 1, 2, 2, 2])
    counts = per_class_counts(logits, y, [0, 1, 2])
    assert counts == {0: (1, 1), 1: (1, 1), 2: (1, 3)}
    assert pooled(counts, [1, 2]) == pytest.approx(2 / 4) and pooled(counts, [7]) is None


class _Fixed(nn.Module):
    """Predicts a fixed class per true label (a lookup by the input's first pixel, which holds the label)."""

    def __init__(self, mapping: dict[int, int]) -> None:
        super().__init__()
        self.mapping = mapping
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        labels = x.reshape(len(x), -1)[:, 0].round().long()
        pred = torch.tensor([self.mapping.get(int(v), int(v)) for v in labels])
        return torch.nn.functional.one_hot(pred, 10).float() + 0 * self.anchor


def _ctx(models: dict[str, nn.Module], state: StreamState | None) -> EvalContext:
    ds = load_dataset("digits")
    x = ds.test.x.clone()
    x.reshape(len(x), -1)[:, 0] = ds.test.y.float()  # the label in the first pixel, for _Fixed
    from dataclasses import replace

    ds = replace(ds, test=replace(ds.test, x=x))
    splits = ForgetRequest("class", classes=("1",)).resolve(ds, seed=0)
    return EvalContext(ds, splits, models, extras={EXTRAS_KEY: state} if state else None)


def test_metrics_read_kept_removed_and_learning_time_accuracies():
    # learned tasks (0,1) and (2,3); class 1 removed. The model is right everywhere except class 2 (-> 3) and class 1
    # (-> 0, as a model that forgot it would be)
    model = _Fixed({2: 3, 1: 0})
    y = load_dataset("digits").test.y.numpy()
    n = {c: int((y == c).sum()) for c in range(4)}
    at_learning = [{0: (n[0], n[0]), 1: (n[1], n[1])},  # task 1 perfect right after it was learned
                   {0: (n[0], n[0]), 1: (0, n[1]), 2: (n[2], n[2]), 3: (n[3], n[3])}]
    state = StreamState(tasks=((0, 1), (2, 3)), kept=(0, 2, 3), removed=(1,),
                        learned_acc={"unlearned": at_learning})
    ctx = _ctx({"unlearned": model, "retrain": model}, state)
    avg = ContinualAverageAccuracy()(ctx, "unlearned")
    assert avg.value == pytest.approx((n[0] + n[3]) / (n[0] + n[2] + n[3]))
    assert ContinualRemovedAccuracy()(ctx, "unlearned").value == pytest.approx(0.0)
    bwt = ContinualBackwardTransfer()(ctx, "unlearned")
    assert bwt.value == pytest.approx(0.0)  # task 1's kept class 0: 1.0 then and now; task 2 is the last task
    # a model that now misses class 0 forgets task 1 entirely: BWT = 0 - 1
    ctx2 = _ctx({"unlearned": _Fixed({0: 5, 2: 3, 1: 0})}, state)
    assert ContinualBackwardTransfer()(ctx2, "unlearned").value == pytest.approx(-1.0)
    # the oracle has no trajectory; no stream at all: None with a reason
    none = ContinualBackwardTransfer()(ctx, "retrain")
    assert none.value is None and "jointly" in none.reason
    plain = _ctx({"unlearned": model}, None)
    for metric in (ContinualAverageAccuracy(), ContinualRemovedAccuracy(), ContinualBackwardTransfer()):
        value = metric(plain, "unlearned")
        assert value.value is None and "continual" in value.reason
