from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from expunge.errors import InvalidDataset
from expunge.methods._shared.lm import encode_refusals, mean_token_probability, refusal_rows
from expunge.methods.base import RunContext, get_method
from expunge.methods.flat import activation, conjugate, flat_loss

SGD = {"optimizer": "sgd", "momentum": "0", "weight_decay": "0", "clip_grad_norm": "none"}
ONE_REFUSAL = "i do not know ."


def test_kl_pair_gives_the_closed_form():
    pe, pf = torch.tensor([0.2, 0.6]), torch.tensor([0.9, 0.4])
    expected = -pe.mean() + torch.exp(pf - 1).mean()
    assert torch.allclose(flat_loss(pe, pf, "kl"), expected)


@pytest.mark.parametrize("v", [0.0, 0.3, 1.0])
def test_conjugate_of_activation_matches_the_f_gan_table(v):
    t = torch.tensor(v)
    # Jensen–Shannon: f*(g*(v)) = −log(2 − 2σ(v)) = −log 2 + softplus(v)
    assert float(conjugate(activation(t, "js"), "js")) == pytest.approx(-math.log(2) + float(F.softplus(t)), abs=1e-6)
    assert float(conjugate(activation(t, "pearson"), "pearson")) == pytest.approx(v * v / 4 + v)
    assert float(conjugate(activation(t, "tv"), "tv")) == pytest.approx(0.5 * math.tanh(v))


@pytest.mark.parametrize("divergence", ["kl", "js", "pearson", "tv"])
def test_loss_falls_with_template_probability_and_rises_with_forget_probability(divergence):
    pe = torch.tensor([0.3], requires_grad=True)
    pf = torch.tensor([0.7], requires_grad=True)
    flat_loss(pe, pf, divergence).backward()
    assert pe.grad < 0 < pf.grad


def probabilities(model, data, templates):
    xf, yf = data.forget
    xe, ye, _ = refusal_rows(xf, yf, templates, torch.Generator())
    with torch.no_grad():
        return float(mean_token_probability(model(xe), ye).mean()), float(mean_token_probability(model(xf), yf).mean())


@pytest.mark.parametrize("divergence", ["kl", "js", "pearson", "tv"])
def test_one_step_raises_template_probability_and_lowers_forget_probability(tiny_lm, fake_data, divergence):
    model, data = tiny_lm(), fake_data()
    templates = encode_refusals(data.tokenizer, [ONE_REFUSAL])
    out = get_method("flat", {**SGD, "epochs": "1", "batch_size": "8", "lr": "1.0", "divergence": divergence,
                              "refusals": ONE_REFUSAL}).unlearn(copy.deepcopy(model), data, RunContext())
    pe0, pf0 = probabilities(model, data, templates)
    pe1, pf1 = probabilities(out, data, templates)
    assert pe1 > pe0 and pf1 < pf0


def test_rows_without_a_prompt_drop_the_template_term():
    pe, pf = torch.tensor([0.5, 0.9]), torch.tensor([0.2, 0.2])
    masked = flat_loss(pe, pf, "kl", torch.tensor([True, False]))
    assert torch.allclose(masked, -(0.5 + 0.0) / 2 + torch.exp(pf - 1).mean())


def test_reads_only_the_forget_set_and_needs_the_tokenizer(tiny_lm, fake_data):
    assert get_method("flat").access.describe() == "forget"
    with pytest.raises(InvalidDataset, match="tokenizer"):
        get_method("flat", {"epochs": "1"}).unlearn(tiny_lm(), fake_data(tokenizer=False), RunContext())
    with pytest.raises(InvalidDataset, match="cannot spell"):
        get_method("flat", {"epochs": "1", "refusals": "no comprendo"}).unlearn(tiny_lm(), fake_data(), RunContext())
