from __future__ import annotations

import copy
import math

import pytest
import torch

from expunge.methods._shared.lm import reference_copy, sequence_nll
from expunge.methods.base import RunContext, get_method
from expunge.methods.npo import npo_loss

SGD = {"optimizer": "sgd", "momentum": "0", "weight_decay": "0", "clip_grad_norm": "none"}


@pytest.mark.parametrize("beta", [0.1, 1.0, 2.5])
def test_at_the_reference_loss_is_2_ln2_over_beta_and_slope_is_one(beta):
    r = torch.zeros(4, requires_grad=True)
    loss = npo_loss(r, beta)
    assert float(loss.detach()) == pytest.approx(2 * math.log(2) / beta)
    loss.backward()
    # d/dr of −(2/β) log σ(−βr) is 2σ(βr) = 1 at r = 0, divided by the batch mean's N
    assert torch.allclose(r.grad, torch.full((4,), 0.25))


def test_weight_vanishes_as_the_forget_answer_becomes_unlikely():
    """dL/dr = 2σ(βr)/N: an answer already much less likely than under π_ref (r ≪ 0) gets almost no push."""
    r = torch.tensor([2.0, 0.0, -5.0, -50.0], requires_grad=True)
    npo_loss(r, 0.5).backward()
    g = r.grad * 4
    assert torch.allclose(g, 2 * torch.sigmoid(0.5 * r.detach()))
    assert (g[:-1] > g[1:]).all() and g[-1] < 1e-9


def test_first_step_equals_sequence_level_gradient_ascent(tiny_lm, fake_data):
    """At θ = π_ref, ∇L_f = −mean ∇ℓ_θ: one full-batch SGD step of NPO (α = 0) is θ + η ∇ mean ℓ."""
    model, data = tiny_lm(), fake_data()
    xf, yf = data.forget
    out = get_method("npo", {**SGD, "epochs": "1", "lr": "0.01", "batch_size": "8", "alpha": "0"}) \
        .unlearn(copy.deepcopy(model), data, RunContext())
    model.zero_grad()
    sequence_nll(model(xf), yf).mean().backward()
    for (name, p0), p1 in zip(model.named_parameters(), out.parameters(), strict=True):
        assert torch.allclose(p1, p0 + 0.01 * p0.grad, atol=1e-6), name


def test_npo_gradient_matches_ga_at_reference_via_autograd(tiny_lm, fake_data):
    model, data = tiny_lm(), fake_data()
    xf, yf = data.forget
    ref = reference_copy(model)
    with torch.no_grad():
        nll_ref = sequence_nll(ref(xf), yf)
    npo_loss(nll_ref - sequence_nll(model(xf), yf), 0.1).backward()
    npo_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    (-sequence_nll(model(xf), yf).mean()).backward()
    for a, p in zip(npo_grads, model.parameters(), strict=True):
        assert torch.allclose(a, p.grad, atol=1e-6)


def test_unlearn_lowers_forget_probability_and_keeps_retain(memorised):
    model, data = memorised()
    (xf, yf), (xr, yr) = data.forget, data.retain
    out = get_method("npo", {"epochs": "10", "lr": "0.003", "batch_size": "4"}).unlearn(
        copy.deepcopy(model), data, RunContext())
    with torch.no_grad():
        f0, f1 = sequence_nll(model(xf), yf).mean(), sequence_nll(out(xf), yf).mean()
        r1 = sequence_nll(out(xr), yr).mean()
    assert f1 > f0 + 1.0  # the forget answers lost probability (by a factor e on average)
    assert r1 < 0.5 * f1  # the retain answers kept most of theirs
