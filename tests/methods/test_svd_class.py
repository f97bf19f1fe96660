"""svd_class: the scaling function's end points, gradient-freeness, the projection on orthogonal class subspaces, the
reference orientation, conv patch layout, class-requests-only, and forgetting on digits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from expunge.data.access import DataAccess
from expunge.data.request import ForgetRequest
from expunge.errors import ExpungeError
from expunge.methods.base import RunContext, get_method
from expunge.methods.svd_class import (
    ClassRequestRequired,
    SVDClass,
    _as_rows,
    layer_rows,
    project_weights,
    projections,
    scaled_importance,
    scaled_space,
)
from expunge.protocols.runner import run_method


@pytest.mark.parametrize("alpha", [0.25, 1.0, 3.0, 100.0, 1e4])
def test_scaling_is_zero_at_zero_one_at_one_and_monotone(alpha):
    r = torch.linspace(0, 1, 101, dtype=torch.float64)
    f = scaled_importance(r, alpha)
    assert f[0].item() == 0.0 and f[-1].item() == pytest.approx(1.0, abs=1e-12)
    assert torch.all(f[1:] >= f[:-1])
    if alpha > 1:
        assert torch.all(f[1:-1] > r[1:-1])  # α > 1 inflates small energy fractions


def _toy(seed=0):
    """Linear 6 -> 3 (no bias); class c lives in span(e_2c, e_2c+1) and W maps it to logit c only."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 3, bias=False))
    with torch.no_grad():
        model[0].weight.zero_()
        for c in range(3):
            model[0].weight[c, 2 * c:2 * c + 2] = torch.tensor([1.0, 0.5])

    def sample(c, n):
        x = torch.zeros(n, 6)
        x[:, 2 * c:2 * c + 2] = torch.rand(n, 2, generator=g) + 0.5
        return x

    return model, sample


@pytest.mark.parametrize("transpose", [True, False])
def test_orthogonal_class_subspaces_keep_retain_logits_and_collapse_the_forget_logit(transpose):
    model, sample = _toy()
    retain_x, forget_x = torch.cat([sample(0, 40), sample(1, 40)]), sample(2, 40)
    before_r, before_f = model(retain_x).detach(), model(forget_x).detach()
    proj = projections(model, retain_x, forget_x, alpha_r=100.0, alpha_f=1e6, max_patches=10_000,
                       generator=torch.Generator().manual_seed(0))
    project_weights(model, proj, transpose=transpose)
    after_r, after_f = model(retain_x).detach(), model(forget_x).detach()
    assert torch.allclose(after_r, before_r, atol=1e-6)  # retain logits unchanged
    assert after_f[:, 2].abs().max() < 1e-3 * before_f[:, 2].abs().min()  # forget-class logit collapses
    # with the paper's α_f = 3 the forget logit shrinks but does not vanish (soft scaling)
    model2, _ = _toy()
    proj2 = projections(model2, retain_x, forget_x, alpha_r=100.0, alpha_f=3.0, max_patches=10_000,
                        generator=torch.Generator().manual_seed(0))
    project_weights(model2, proj2, transpose=transpose)
    shrunk = model2(forget_x).detach()[:, 2]
    assert torch.all(shrunk.abs() < 0.6 * before_f[:, 2].abs()) and torch.all(shrunk.abs() > 0)
    assert torch.allclose(model2(retain_x).detach(), before_r, atol=1e-6)


def test_default_orientation_is_the_reference_w_times_p_transposed():
    torch.manual_seed(0)
    model = nn.Linear(5, 4)
    retain_x, forget_x = torch.rand(30, 5), torch.rand(20, 5) + torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0])
    g = torch.Generator().manual_seed(1)
    m_r = scaled_space(layer_rows(model, retain_x, max_patches=100, generator=g)[""], 100.0)
    m_f = scaled_space(layer_rows(model, forget_x, max_patches=100, generator=g)[""], 3.0)
    eye = torch.eye(5, dtype=torch.float64)
    w0 = model.weight.detach().double().clone()
    assert not torch.allclose(m_f @ m_r, m_r @ m_f, atol=1e-6)  # non-commuting: the orientation matters here
    for transpose, expected in ((True, w0 @ (eye - m_f + m_r @ m_f)), (False, w0 @ (eye - m_f + m_f @ m_r))):
        copy = nn.Linear(5, 4)
        copy.load_state_dict(model.state_dict())
        proj = projections(copy, retain_x, forget_x, alpha_r=100.0, alpha_f=3.0, max_patches=100,
                           generator=torch.Generator().manual_seed(1))
        project_weights(copy, proj, transpose=transpose)
        assert torch.allclose(copy.weight.double(), expected, atol=1e-5)
        assert torch.equal(copy.bias, model.bias)  # biases are kept
    assert SVDClass.Params().transpose_projection is True


def test_conv_patch_rows_follow_the_weight_layout_and_respect_max_patches():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, dilation=1)
    x = torch.randn(4, 2, 7, 7)
    rows = _as_rows(conv, x)
    out = conv(x).permute(0, 2, 3, 1).reshape(-1, 3)
    assert torch.allclose(rows @ conv.weight.flatten(1).T + conv.bias, out, atol=1e-5)
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    got = layer_rows(model, x, max_patches=20, generator=torch.Generator().manual_seed(0), batch_size=3)
    assert got["0"].shape == (20, 2 * 9) and got["3"].shape == (4, 48)


def test_cnn_weights_keep_their_shapes_and_grouped_convs_are_skipped():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1, groups=2),
                          nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    grouped = model[2].weight.detach().clone()
    shapes = {n: p.shape for n, p in model.named_parameters()}
    proj = projections(model, torch.rand(12, 1, 8, 8), torch.rand(6, 1, 8, 8), alpha_r=100.0, alpha_f=3.0,
                       max_patches=500, generator=torch.Generator().manual_seed(0))
    assert sorted(proj) == ["0", "5"]
    assert project_weights(model, proj) == ["0", "5"]
    assert {n: p.shape for n, p in model.named_parameters()} == shapes
    assert torch.equal(model[2].weight, grouped)


def test_no_gradient_is_computed(prepared_class3, monkeypatch):
    prep = prepared_class3

    def forbidden(*args, **kwargs):
        raise AssertionError("svd_class must not compute gradients")

    monkeypatch.setattr(torch.Tensor, "backward", forbidden)
    monkeypatch.setattr(torch.autograd, "grad", forbidden)
    grad_enabled_in_forward = []

    class Spy(SVDClass):
        def unlearn(self, model, data, ctx):
            model.register_forward_hook(lambda *_: grad_enabled_in_forward.append(torch.is_grad_enabled()))
            return super().unlearn(model, data, ctx)

    res = run_method(Spy(), prep.original.model, prep.dataset, prep.splits, RunContext(seed=0))
    assert grad_enabled_in_forward and not any(grad_enabled_in_forward)  # no autograd graph was ever built
    assert all(p.grad is None for p in res.model.parameters())


def test_access_is_forget_and_a_retain_subset_and_only_class_requests_are_accepted(prepared_class3):
    prep = prepared_class3
    assert SVDClass.access == DataAccess.FORGET | DataAccess.RETAIN_SUBSET
    res = run_method(get_method("svd_class"), prep.original.model, prep.dataset, prep.splits, RunContext(seed=0))
    n_retained = prep.dataset.num_classes - 1
    assert res.access["retain_seen"] == (900 // n_retained) * n_retained  # a few samples per class, not D_r
    assert res.access["forget_seen"] == min(900, prep.splits.forget.size)
    assert res.notes["projected_layers"] == 3 and res.notes["skipped_layers"] == []
    random_splits = ForgetRequest.parse("random:0.1").resolve(prep.dataset)
    with pytest.raises(ClassRequestRequired, match="whole classes") as info:
        run_method(get_method("svd_class"), prep.original.model, prep.dataset, random_splits, RunContext(seed=0))
    assert isinstance(info.value, ExpungeError)


def test_svd_class_forgets_a_class(prepared_class3):
    from expunge.protocols.pipeline import run_step

    record, _ = run_step(prepared_class3, "svd_class", save=False)
    assert record.metrics["forget_acc"] < 0.1
    assert record.metrics["retain_acc"] > 0.8
