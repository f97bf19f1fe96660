from __future__ import annotations

import copy

import pytest
import torch

from expunge.errors import IncompatibleModel, InvalidHyperparameter
from expunge.methods.base import RunContext, get_method
from expunge.methods.rmu import (
    RMU_SALT,
    activation_loss,
    activations,
    random_direction,
    selected_parameters,
    steered_layer,
    token_mask,
    transformer_blocks,
)


def forget_loss(model, data, coeff, ctx, layer):
    xf, yf = data.forget
    with torch.no_grad():
        h = activations(model, transformer_blocks(model)[layer], xf)
        u = random_direction(h.shape[-1], ctx.generator(salt=RMU_SALT))
        return float(activation_loss(h, coeff * u, token_mask(xf, yf, "tokens")))


def test_only_the_selected_mlp_weights_move_and_forget_loss_falls(tiny_lm, fake_data):
    model, data = tiny_lm(n_layer=3), fake_data()
    ctx = RunContext(seed=0)
    params = {"layer": "2", "window": "2", "epochs": "10", "steering_coeff": "10", "alpha": "10", "lr": "0.01"}
    out = get_method("rmu", params).unlearn(copy.deepcopy(model), data, ctx)
    chosen = {"lm.transformer.h.1.mlp.c_proj.weight", "lm.transformer.h.2.mlp.c_proj.weight"}
    after = dict(out.named_parameters())
    for name, p in model.named_parameters():
        if name in chosen:
            assert not torch.equal(p, after[name]), name
        else:
            assert torch.equal(p, after[name]), f"{name} moved"
    assert all(p.requires_grad for p in out.parameters())  # flags restored
    assert forget_loss(out, data, 10.0, ctx, 2) < 0.9 * forget_loss(model, data, 10.0, ctx, 2)


def test_direction_is_unit_norm_non_negative_and_seeded():
    u = random_direction(16, torch.Generator().manual_seed(0))
    assert float(u.norm()) == pytest.approx(1.0) and (u >= 0).all()
    assert torch.equal(u, random_direction(16, torch.Generator().manual_seed(0)))


def test_activation_loss_is_a_masked_mean_of_squared_distance_over_d():
    h = torch.zeros(1, 3, 4)
    h[0, 0] = 2.0
    target = torch.zeros(4)
    mask = torch.tensor([[True, True, False]])
    assert float(activation_loss(h, target, mask)) == pytest.approx((4.0 + 0.0) / 2)


def test_masks_drop_padding_or_keep_answers_only(fake_data):
    x, y = fake_data().forget
    assert torch.equal(token_mask(x, y, "tokens"), x != 0)
    assert torch.equal(token_mask(x, y, "answer"), y != -100)


def test_default_layer_is_the_papers_relative_depth(tiny_lm):
    assert steered_layer(tiny_lm(n_layer=1), None) == 0
    assert steered_layer(tiny_lm(n_layer=4), None) == 1
    assert steered_layer(tiny_lm(n_layer=4), 3) == 3


def test_layer_beyond_the_model_is_refused(tiny_lm):
    with pytest.raises(InvalidHyperparameter, match="layer"):
        selected_parameters(tiny_lm(), layer=3, window=3)


def test_a_model_without_blocks_is_refused():
    with pytest.raises(IncompatibleModel, match="block stack"):
        transformer_blocks(torch.nn.Linear(2, 2))
