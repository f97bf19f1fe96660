"""boundary_shrink: on a 2-class linear toy the forget points end on the other side; y_nb comes from the frozen
original; ε is a pixel-space step whatever the input normalisation; failed attacks are counted and can be skipped."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from method_helpers import split_accuracy
from torch import nn

import expunge.methods.boundary_shrink as bs
from expunge.data.datasets import from_arrays
from expunge.data.request import ForgetRequest, Splits
from expunge.errors import InvalidHyperparameter
from expunge.methods.base import RunContext, get_method
from expunge.protocols.runner import run_method
from expunge.store.artifacts import state_hash


def _toy():
    """Two classes in [0,1]²: class 0 left of x₁ = 0.5, class 1 right; a linear model with that boundary."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, size=(80, 2)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    ds = from_arrays("toy2", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10], class_names=("left", "right"))
    model = nn.Linear(2, 2)
    with torch.no_grad():  # logit difference 20·(x₁ − 0.5)
        model.weight.copy_(torch.tensor([[-10.0, 0.0], [10.0, 0.0]]))
        model.bias.copy_(torch.tensor([5.0, -5.0]))
    near = np.where((y == 0) & (x[:, 0] > 0.3))[0]  # class-0 points within ε = 0.25 of the boundary
    ids = ds.train.ids[near]
    splits = Splits.from_ids(ds, ids, request=ForgetRequest("ids", ids=tuple(int(i) for i in ids)))
    return ds, model, splits


def test_forget_points_cross_to_the_other_class_on_a_linear_toy():
    ds, model, splits = _toy()
    params = {"eps": "0.25", "input_range": "0,1", "epochs": "30", "lr": "0.5", "batch_size": "8"}
    res = run_method(get_method("boundary_shrink", params), model, ds, splits, RunContext(seed=0))
    xf = ds.train.x[splits.forget]
    assert res.notes["failed_attack_share"] == 0.0
    with torch.no_grad():
        assert (model(xf).argmax(1) == 0).all() and (res.model(xf).argmax(1) == 1).all()


def test_neighbour_labels_come_from_the_frozen_original(monkeypatch, prepared_class3):
    prep = prepared_class3
    calls = []
    real = bs.neighbour_labels

    def spy(f0, x, y, **kw):
        calls.append((state_hash(f0), f0))
        return real(f0, x, y, **kw)

    monkeypatch.setattr(bs, "neighbour_labels", spy)
    res = run_method(get_method("boundary_shrink", {"epochs": "3", "lr": "0.05"}), prep.original.model,
                     prep.dataset, prep.splits, RunContext(seed=0))
    assert len(calls) == 1 and calls[0][0] == state_hash(prep.original.model)  # once, on θ₀
    assert calls[0][1] is not res.model and state_hash(res.model) != state_hash(prep.original.model)
    assert all(not p.requires_grad for p in calls[0][1].parameters())


def test_eps_is_a_pixel_space_step_under_any_affine_normalisation():
    torch.manual_seed(0)
    pix_model = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))
    x_pix, y = torch.rand(32, 1, 4, 4), torch.randint(0, 10, (32,))
    mean, std = 0.286, 0.353  # Fashion-MNIST's normalisation
    norm_model = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))
    with torch.no_grad():  # norm_model(x_n) = pix_model(x_n·std + mean)
        norm_model[1].weight.copy_(pix_model[1].weight * std)
        norm_model[1].bias.copy_(pix_model[1].bias + pix_model[1].weight.sum(1) * mean)
    x_norm = (x_pix - mean) / std
    adv_p, lab_p = bs.neighbour_labels(pix_model, x_pix, y, eps=0.1, low=0.0, high=1.0)
    adv_n, lab_n = bs.neighbour_labels(norm_model, x_norm, y, eps=0.1, low=-mean / std, high=(1 - mean) / std)
    assert torch.equal(lab_p, lab_n)
    assert torch.allclose((adv_p - mean) / std, adv_n, atol=1e-5)
    moved = (adv_p - x_pix).abs()
    assert torch.allclose(moved[(adv_p > 0) & (adv_p < 1)], torch.tensor(0.1), atol=1e-6)  # ε, unless clipped


def test_default_range_is_the_forget_set_min_max_and_skip_failed_drops_failures(prepared_class3):
    prep = prepared_class3
    res = run_method(get_method("boundary_shrink", {"epochs": "1", "skip_failed": "true"}), prep.original.model,
                     prep.dataset, prep.splits, RunContext(seed=0))
    xf = prep.dataset.train.x[prep.splits.forget]
    assert res.notes["input_range"] == [float(xf.min()), float(xf.max())] == [0.0, 1.0]
    n_f = prep.splits.forget.size
    assert res.notes["trained_on"] == n_f - round(res.notes["failed_attack_share"] * n_f)
    assert 0.0 < res.notes["failed_attack_share"] < 1.0  # digits/mlp at ε = 0.1: ~38% fail


def test_input_range_is_validated():
    with pytest.raises(InvalidHyperparameter, match="input_range"):
        bs.BoundaryShrinkParams.from_overrides({"input_range": "1,0"})


def test_forgets_a_class(prepared_class3):
    prep = prepared_class3
    res = run_method(get_method("boundary_shrink", {}), prep.original.model, prep.dataset, prep.splits,
                     RunContext(seed=0))
    acc = split_accuracy(res.model, prep, "forget")
    assert acc < 0.5
