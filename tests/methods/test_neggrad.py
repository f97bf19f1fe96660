from __future__ import annotations

import torch
import torch.nn.functional as F

from expunge.methods.base import RunContext, get_method
from expunge.protocols.runner import run_method


def test_one_step_moves_along_plus_gradient_of_ce(prepared_class3):
    """Gradient *ascent*: with plain SGD, one full-batch step is θ + η ∇CE."""
    prep = prepared_class3
    n = prep.splits.forget.size
    params = {"epochs": "1", "lr": "0.1", "momentum": "0", "weight_decay": "0", "batch_size": str(n),
              "clip_grad_norm": "none"}
    res = run_method(get_method("neggrad", params), prep.original.model, prep.dataset, prep.splits, RunContext())
    model = prep.original.model
    tr = prep.dataset.train
    x, y = tr.x[prep.splits.forget], tr.y[prep.splits.forget]
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    for (name, p0), p1 in zip(model.named_parameters(), res.model.parameters(), strict=True):
        assert torch.allclose(p1, p0 + 0.1 * p0.grad, atol=1e-6), name
    model.zero_grad(set_to_none=True)


def test_forget_loss_increases(prepared_class3):
    prep = prepared_class3
    res = run_method(get_method("neggrad", {"epochs": "3", "lr": "0.01"}), prep.original.model, prep.dataset,
                     prep.splits, RunContext())
    tr = prep.dataset.train
    x, y = tr.x[prep.splits.forget], tr.y[prep.splits.forget]
    with torch.no_grad():
        assert F.cross_entropy(res.model(x), y) > F.cross_entropy(prep.original.model(x), y)


def test_early_stop_at_target_forget_accuracy(prepared_class3):
    prep = prepared_class3
    res = run_method(get_method("neggrad", {"epochs": "50", "lr": "0.05", "stop_at_forget_acc": "0.5"}),
                     prep.original.model, prep.dataset, prep.splits, RunContext())
    assert res.notes["stopped"] is not None and "early stop" in res.notes["stopped"]
