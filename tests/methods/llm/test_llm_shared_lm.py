from __future__ import annotations

import pytest
import torch

from expunge.data.batches import Batches
from expunge.methods._shared.lm import ForgetRetainBatches, mean_token_probability
from expunge.tasks.token_logprobs import IGNORE_INDEX


def test_forget_anchored_pairs_cycle_the_retain_loader():
    f, r = torch.arange(5), torch.arange(3) + 10
    paired = ForgetRetainBatches(Batches(f, f, batch_size=2, shuffle=False), Batches(r, r, batch_size=2, shuffle=False))
    assert len(paired) == 3  # one epoch = one pass over the forget set
    steps = [(xf.tolist(), xr.tolist()) for xf, _, xr, _ in paired]
    assert steps == [([0, 1], [10, 11]), ([2, 3], [12]), ([4], [10, 11])]


def test_mean_token_probability_averages_probabilities_not_log_probabilities():
    # one row, two answer tokens predicted with probabilities 0.5 and 1/V·e^0 (uniform logits)
    vocab = 4
    logits = torch.zeros(1, 3, vocab)
    logits[0, 0] = torch.log(torch.tensor([0.5, 0.5 / 3, 0.5 / 3, 0.5 / 3]))
    labels = torch.tensor([[IGNORE_INDEX, 0, 2]])
    assert float(mean_token_probability(logits, labels)) == pytest.approx((0.5 + 0.25) / 2)
    assert float(mean_token_probability(logits, torch.full_like(labels, IGNORE_INDEX))) == 0.0
