"""The fx-compiled stacked forward pass: equal to vmap(functional_call) on supported models (both layouts, residual
adds, pooling variants), gradients included; None with a reason for unsupported ones — never a wrong answer."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from expunge.models.small import MLP, SmallCNN, SmallResNet
from expunge.shadows.stacked_forward import compile_stacked_forward


class Residual(nn.Module):
    """Every supported node: convolutions (with and without bias), a residual add of grouped values, average,
    max and adaptive pooling (module and function forms), Identity, dropout(0), Flatten and a bias-free linear."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 6, 3, padding=1)
        self.b = nn.Conv2d(6, 6, 3, padding=1, bias=False)
        self.pool, self.mpool = nn.AvgPool2d(2), nn.MaxPool2d(2)
        self.skip, self.drop, self.flat = nn.Identity(), nn.Dropout(0.0), nn.Flatten()
        self.fc = nn.Linear(6 * 2 * 2, 5, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.a(x))
        h = torch.relu(self.b(h)) + self.skip(h)
        h = self.mpool(self.pool(h))
        h = h + F.adaptive_avg_pool2d(F.avg_pool2d(h, 1), 2)
        return self.fc(self.drop(self.flat(h)))


class Tanh(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(torch.flatten(x, 1)))


class ScaledLinear(nn.Linear):
    """A Linear whose forward is not a linear layer's; fx keeps it a leaf (it claims to live in torch.nn), so only
    the dry-run comparison with the model can notice."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(x)


ScaledLinear.__module__ = "torch.nn.modules.linear"


def _vmap_forward(model: nn.Module):
    base = copy.deepcopy(model).to("meta")
    return vmap(lambda p, xb: functional_call(base, p, (xb,)))


@pytest.mark.parametrize(("make", "shape"), [
    (lambda: MLP((1, 8, 8), 10), (1, 8, 8)),
    (lambda: SmallCNN((1, 8, 8), 10), (1, 8, 8)),
    (lambda: SmallCNN((1, 28, 28), 10), (1, 28, 28)),
    (Residual, (2, 8, 8)),
])
def test_stacked_forward_and_gradients_equal_vmap(make, shape):
    torch.manual_seed(0)
    models = [make() for _ in range(3)]  # different weights per model
    forward, reason = compile_stacked_forward(models[0], torch.randn(4, *shape))
    assert reason is None and forward is not None
    stacked, _ = stack_module_state(models)
    x = torch.randn(3, 5, *shape)  # different inputs per model
    out = forward(stacked, x)
    ref = _vmap_forward(models[0])(stacked, x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for k, m in enumerate(models):  # and each slice is that model's own forward pass
        torch.testing.assert_close(out[k], m(x[k]), atol=1e-5, rtol=1e-5)
    params = list(stacked.values())
    g = torch.autograd.grad(out.square().sum(), params)
    g_ref = torch.autograd.grad(ref.square().sum(), params)
    for a, b in zip(g, g_ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("model", "shape", "reason"), [
    (Tanh(), (1, 8, 8), "function tanh"),
    (SmallResNet((1, 8, 8), 10), (1, 8, 8), "module BatchNorm2d"),
    (nn.Sequential(nn.Flatten(), ScaledLinear(64, 3)), (1, 8, 8), "does not reproduce"),
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.Flatten()), (1, 8, 8), "reflect"),
])
def test_unsupported_models_are_refused_with_a_reason(model, shape, reason):
    forward, why = compile_stacked_forward(model, torch.randn(2, *shape))
    assert forward is None and reason in str(why)
