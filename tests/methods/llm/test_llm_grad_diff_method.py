from __future__ import annotations

import copy

import torch

from expunge.methods._shared.lm import answer_kl, reference_copy, retain_term
from expunge.methods.base import RunContext, get_method
from expunge.tasks.token_logprobs import lm_loss

SGD = {"optimizer": "sgd", "momentum": "0", "weight_decay": "0", "clip_grad_norm": "none"}


def test_alpha_zero_reproduces_grad_ascent_bit_for_bit(tiny_lm, fake_data):
    model, data = tiny_lm(), fake_data(n_forget=10)
    common = {"epochs": "3", "lr": "0.01", "batch_size": "4", "collapse_margin": "none"}
    ga = get_method("llm_grad_ascent", common).unlearn(copy.deepcopy(model), data, RunContext(seed=3))
    gd = get_method("llm_grad_diff", {**common, "alpha": "0"}).unlearn(copy.deepcopy(model), data,
                                                                      RunContext(seed=3))
    for (name, a), b in zip(ga.named_parameters(), gd.parameters(), strict=True):
        assert torch.equal(a, b), name
    moved = get_method("llm_grad_diff", common).unlearn(copy.deepcopy(model), data, RunContext(seed=3))
    assert any(not torch.equal(a, b) for a, b in zip(ga.parameters(), moved.parameters(), strict=True))


def test_one_step_descends_gamma_ascent_plus_alpha_retain_nll(tiny_lm, fake_data):
    """One full-batch SGD step is θ − η ∇(−γ·NLL_f + α·NLL_r)."""
    model, data = tiny_lm(), fake_data(n_forget=8, n_retain=8)
    (xf, yf), (xr, yr) = data.forget, data.retain
    out = get_method("llm_grad_diff", {**SGD, "epochs": "1", "lr": "0.1", "batch_size": "8", "gamma": "0.5",
                                       "alpha": "2"}).unlearn(copy.deepcopy(model), data, RunContext())
    model.zero_grad()
    (-0.5 * lm_loss(model(xf), yf) + 2.0 * lm_loss(model(xr), yr)).backward()
    for (name, p0), p1 in zip(model.named_parameters(), out.parameters(), strict=True):
        assert torch.allclose(p1, p0 - 0.1 * p0.grad, atol=1e-6), name


def test_kl_retain_term_is_zero_at_the_reference_and_positive_away(tiny_lm, fake_data):
    model, data = tiny_lm(), fake_data()
    xr, yr = data.retain
    ref = reference_copy(model)
    at_ref = retain_term(model, ref, xr, yr, "kl")
    assert abs(float(at_ref.detach())) < 1e-6
    at_ref.backward()
    assert all(p.grad is None or p.grad.abs().max() < 1e-6 for p in model.parameters())
    other = tiny_lm(seed=1)
    with torch.no_grad():
        assert answer_kl(other(xr), ref(xr), yr) > 0.01


def test_kl_reads_answer_positions_only(tiny_lm, fake_data):
    """Logits at prompt and padding positions do not change the KL."""
    model, data = tiny_lm(), fake_data()
    xr, yr = data.retain
    with torch.no_grad():
        logits, ref_logits = model(xr), tiny_lm(seed=1)(xr)
    scored = torch.zeros_like(yr, dtype=torch.bool)
    scored[:, :-1] = yr[:, 1:] != -100
    noisy = torch.where(scored.unsqueeze(-1), logits, torch.randn_like(logits))
    assert torch.allclose(answer_kl(noisy, ref_logits, yr), answer_kl(logits, ref_logits, yr))


def test_unlearn_with_kl_retain_runs_and_raises_forget_nll(tiny_lm, fake_data):
    model, data = tiny_lm(), fake_data()
    out = get_method("llm_grad_diff", {"epochs": "2", "lr": "0.01", "batch_size": "4", "retain_loss": "kl"}) \
        .unlearn(copy.deepcopy(model), data, RunContext())
    with torch.no_grad():
        assert lm_loss(out(data.forget[0]), data.forget[1]) > lm_loss(model(data.forget[0]), data.forget[1])
