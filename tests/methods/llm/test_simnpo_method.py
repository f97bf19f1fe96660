from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from expunge.methods._shared.lm import mean_nll
from expunge.methods.base import RunContext, get_method
from expunge.methods.simnpo import simnpo_loss


@pytest.mark.parametrize(("beta", "margin"), [(4.5, 0.0), (2.0, 1.0)])
def test_gradient_is_minus_two_sigma_and_shrinks_as_the_answer_is_forgotten(beta, margin):
    """dL_f/dℓ̄ = −2σ(γ_m − βℓ̄)/N per sequence: its magnitude falls as ℓ̄ grows."""
    nll = torch.tensor([0.01, 0.5, 1.0, 2.0, 5.0], requires_grad=True)
    simnpo_loss(nll, beta, margin).backward()
    g = nll.grad * len(nll)
    assert torch.allclose(g, -2 * torch.sigmoid(margin - beta * nll.detach()), atol=1e-6)
    assert (g < 0).all() and (g.abs()[:-1] > g.abs()[1:]).all()


def test_margin_is_the_papers_gamma_and_openunlearning_delta_is_gamma_over_beta():
    nll, beta, gamma_m = torch.tensor([0.3, 1.7]), 4.5, 1.5
    delta = gamma_m / beta  # OpenUnlearning: −(2/β) log σ(β(ℓ̄ − δ))
    ou = -(2 / beta) * F.logsigmoid(beta * (nll - delta)).mean()
    assert torch.allclose(simnpo_loss(nll, beta, gamma_m), ou)


def test_no_reference_model_and_the_loss_reads_the_length_normalised_nll(tiny_lm, fake_data):
    model, data = tiny_lm(), fake_data()
    xf, yf = data.forget
    logits = model(xf)
    expected = -(2 / 4.5) * F.logsigmoid(4.5 * mean_nll(logits, yf)).mean()
    assert torch.allclose(simnpo_loss(mean_nll(logits, yf), 4.5, 0.0), expected)


def test_unlearn_raises_forget_nll_more_than_retain_nll(memorised):
    model, data = memorised()
    (xf, yf), (xr, yr) = data.forget, data.retain
    out = get_method("simnpo", {"epochs": "10", "lr": "0.003", "batch_size": "4"}).unlearn(
        copy.deepcopy(model), data, RunContext())
    with torch.no_grad():
        df = mean_nll(out(xf), yf).mean() - mean_nll(model(xf), yf).mean()
        dr = mean_nll(out(xr), yr).mean() - mean_nll(model(xr), yr).mean()
    assert df > 0.5 and df > 3 * dr
