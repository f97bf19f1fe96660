from __future__ import annotations

import copy

import torch

from expunge.methods._shared.lm import mean_retain_nll
from expunge.methods.base import RunContext, get_method
from expunge.methods.llm_grad_ascent import ascent_loss
from expunge.tasks.token_logprobs import lm_loss

SGD = {"optimizer": "sgd", "momentum": "0", "weight_decay": "0", "clip_grad_norm": "none"}


def test_loss_is_the_negated_token_mean_answer_nll(tiny_lm, fake_data):
    model, data = tiny_lm(), fake_data()
    x, y = data.forget
    assert torch.equal(ascent_loss(model, (x, y)), -lm_loss(model(x), y))
    assert ascent_loss(model, (x, y)) < 0


def test_one_step_is_theta_plus_lr_grad_nll(tiny_lm, fake_data):
    """Gradient *ascent*: one full-batch SGD step is θ + η ∇NLL_f, and NLL_f rises."""
    model, data = tiny_lm(), fake_data()
    x, y = data.forget
    method = get_method("llm_grad_ascent", {**SGD, "epochs": "1", "lr": "0.1", "batch_size": "8",
                                            "collapse_margin": "none"})
    out = method.unlearn(copy.deepcopy(model), data, RunContext())
    model.zero_grad()
    lm_loss(model(x), y).backward()
    for (name, p0), p1 in zip(model.named_parameters(), out.parameters(), strict=True):
        assert torch.allclose(p1, p0 + 0.1 * p0.grad, atol=1e-6), name
    with torch.no_grad():
        assert lm_loss(out(x), y) > lm_loss(model(x), y)


def test_collapse_guard_stops_and_returns_the_last_model_within_the_bound(memorised):
    model, data = memorised()
    ctx = RunContext(seed=0)
    method = get_method("llm_grad_ascent", {"epochs": "20", "lr": "0.001", "batch_size": "4", "clip_grad_norm": "none",
                                            "collapse_margin": "0.5", "guard_examples": "16"})
    out = method.unlearn(copy.deepcopy(model), data, ctx)
    trip = ctx.notes["collapse_guard"]
    assert trip is not None and trip["retain_nll"] > trip["retain_nll_start"] + 0.5
    assert ctx.notes["stopped"].startswith("early stop")
    # the guard watched the whole retain set (16 rows) and rolled back: the returned model is the one of the last
    # epoch that kept its NLL within the margin (not the original: forget NLL has risen)
    assert data.retain_subset_seen == 16
    xr, yr = data.retain
    assert mean_retain_nll(out, xr, yr) <= trip["retain_nll_start"] + 0.5
    assert mean_retain_nll(out, *data.forget) > mean_retain_nll(model, *data.forget)


def test_without_guard_the_retain_subset_is_never_read(tiny_lm, fake_data):
    data = fake_data()
    get_method("llm_grad_ascent", {"epochs": "1", "collapse_margin": "none"}).unlearn(tiny_lm(), data, RunContext())
    assert data.retain_subset_seen == 0
