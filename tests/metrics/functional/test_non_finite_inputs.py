"""Functional metrics never turn NaN/±inf inputs into a plausible number. Regressions: accuracy of all-NaN logits was
1.0 (argmax of a NaN row is its first index), top1_agreement(NaN, NaN) was 1.0, separable(nan, ...) was False ("no
power") instead of None, and the ε-score of a deterministic unlearned model was 0.0 without a word."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from expunge.errors import DegenerateInputWarning, NonFiniteOutputs
from expunge.metrics.functional.accuracy import accuracy, classwise_accuracy
from expunge.metrics.functional.divergence import top1_agreement
from expunge.metrics.functional.epsilon import epsilon_score
from expunge.metrics.functional.stats import separable
from expunge.models import inference

NAN_LOGITS = np.full((4, 3), np.nan)
LABELS = np.zeros(4, dtype=np.int64)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_accuracy_of_non_finite_logits_is_refused(bad):
    logits = np.eye(3)[[0, 0, 1, 2]].astype(float)
    logits[1, 2] = bad  # one bad row is enough: the model is collapsed there
    with pytest.raises(NonFiniteOutputs, match="1 of 4 rows"):
        accuracy(logits, LABELS)
    with pytest.raises(NonFiniteOutputs):
        accuracy(NAN_LOGITS, LABELS)
    with pytest.raises(NonFiniteOutputs):
        classwise_accuracy(NAN_LOGITS, LABELS, 3)
    assert accuracy(np.eye(3)[[0, 0, 1, 2]], LABELS) == 0.5  # finite input: unchanged


def test_top1_agreement_of_nan_outputs_is_refused():
    with pytest.raises(NonFiniteOutputs, match="p holds"):
        top1_agreement(NAN_LOGITS, NAN_LOGITS)
    with pytest.raises(NonFiniteOutputs, match="q holds"):
        top1_agreement(np.eye(3), np.full((3, 3), np.inf))
    assert top1_agreement(np.eye(3), np.eye(3)) == 1.0


def test_separable_with_a_non_finite_input_is_unknown():
    assert separable(math.nan, 0.01, 0.5, 0.01) is None
    assert separable(0.5, 0.01, math.inf, 0.01) is None
    assert separable(0.9, math.nan, 0.1, 0.01) is None
    assert separable(0.9, 0.01, 0.1, 0.01) is True and separable(0.5, 0.1, 0.5, 0.1) is False


def test_model_accuracy_of_a_collapsed_model_is_refused():
    model = nn.Linear(2, 3)
    with torch.no_grad():
        model.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteOutputs, match="3 of 3 examples"):
        inference.accuracy(model, torch.zeros(3, 2), torch.zeros(3, dtype=torch.long))


def test_epsilon_score_of_a_deterministic_method_warns_and_says_why():
    rng = np.random.default_rng(0)
    retrained = rng.normal(0.0, 1.0, size=(5, 8))
    unlearned = np.repeat(rng.normal(0.0, 1.0, size=(5, 1)), 8, axis=1)  # the same φ under every seed
    with pytest.warns(DegenerateInputWarning, match="identical under all 8 unlearning runs for 5 of 5"):
        res = epsilon_score(unlearned, retrained)
    assert res["score"] == 0.0 and res["n_deterministic"] == 5 and "determinism" in res["reason"]
    spread = epsilon_score(rng.normal(0.0, 1.0, size=(5, 8)), retrained)
    assert spread["n_deterministic"] == 0 and "reason" not in spread
