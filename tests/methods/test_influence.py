"""influence on a softmax-regression toy (nn.Linear, no hidden layer) where everything has a closed form:

per example, with p = softmax(Wx + b), A = diag(p) − ppᵀ and parameters ordered (W row-major, b):
∇ℓ = ((p − e_y) ⊗ x, p − e_y) and ∇²ℓ = [[A ⊗ xxᵀ, A ⊗ x], [A ⊗ xᵀ, A]].
The original θ* minimises (1/n) Σ_D ℓ + (λ/2)‖θ‖², so with damping = λ the step must equal
(H + λI)⁻¹ (1/n) Σ_{D_f} ∇ℓ, H = (1/n) Σ_{D_r} ∇²ℓ, and it is one Newton step towards the minimiser of
(1/n) Σ_{D_r} ℓ + (λ/2)‖θ‖² (the retrained solution under the original's objective).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from method_helpers import split_accuracy
from torch import nn

from expunge.data.batches import Batches
from expunge.data.datasets import from_arrays
from expunge.data.request import ForgetRequest, Splits
from expunge.errors import ExpungeError
from expunge.methods._shared.fisher import per_example_fisher
from expunge.methods.base import RunContext, get_method
from expunge.protocols.runner import run_method

LAM = 0.05
D, C = 3, 3


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()


def _fit(x: torch.Tensor, y: torch.Tensor, n: int, init: nn.Linear | None = None) -> nn.Linear:
    """argmin (1/n) Σ CE + (λ/2)‖θ‖² over the given rows, in float64, returned as a float32 nn.Linear."""
    model = nn.Linear(D, C).double()
    if init is not None:
        model.load_state_dict({k: v.double() for k, v in init.state_dict().items()})
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(x.double()), y, reduction="sum") / n + LAM / 2 * sum(
            p.pow(2).sum() for p in model.parameters())
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    return model.float()


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 2.0, size=(C, D))
    y = np.repeat(np.arange(C), 20)
    x = (centres[y] + rng.normal(0, 1.5, size=(len(y), D))).astype(np.float32)
    ds = from_arrays("softmax-toy", x_train=x, y_train=y, x_test=x[:6], y_test=y[:6], class_names=("a", "b", "c"))
    forget_ids = ds.train.ids[[1, 7, 22, 41, 55]]
    splits = Splits.from_ids(ds, forget_ids, request=ForgetRequest("ids", ids=tuple(int(i) for i in forget_ids)))
    xt, yt = ds.train.x, ds.train.y
    n = len(yt)
    original = _fit(xt, yt, n)
    retrained = _fit(xt[splits.retain], yt[splits.retain], n, init=original)  # same objective scale (1/n)
    return ds, splits, original, retrained


def _closed_form(model: nn.Linear, x: torch.Tensor, y: torch.Tensor, forget: np.ndarray, retain: np.ndarray):
    w, b = model.weight.detach().double(), model.bias.detach().double()
    x = x.double()
    n, p_dim = len(y), C * D + C
    probs = torch.softmax(x @ w.T + b, dim=1)
    hess = torch.zeros(p_dim, p_dim, dtype=torch.float64)
    for i in retain:
        a = torch.diag(probs[i]) - torch.outer(probs[i], probs[i])
        xi = x[i][:, None]
        hess += torch.cat([torch.cat([torch.kron(a, xi @ xi.T), torch.kron(a, xi)], 1),
                           torch.cat([torch.kron(a, xi.T), a], 1)], 0)
    grad = torch.zeros(p_dim, dtype=torch.float64)
    for i in forget:
        r = probs[i] - F.one_hot(y[i], C).double()
        grad += torch.cat([torch.kron(r, x[i]), r])
    return hess / n, grad / n


def test_exact_step_matches_the_closed_form(toy):
    ds, splits, original, _ = toy
    hess, v = _closed_form(original, ds.train.x, ds.train.y, splits.forget, splits.retain)
    expected = torch.linalg.solve(hess + LAM * torch.eye(len(v), dtype=torch.float64), v)
    res = run_method(get_method("influence", {"hessian": "exact", "damping": str(LAM), "batch_size": "16"}),
                     original, ds, splits, RunContext(seed=0))
    step = _flat(res.model) - _flat(original)
    assert torch.allclose(step, expected, rtol=1e-4, atol=1e-6)
    assert expected.norm() > 1e-2  # a real step, not a trivially small one


def test_true_fisher_diagonal_is_the_hessian_diagonal_for_a_linear_model(toy):
    ds, splits, original, _ = toy
    hess, _ = _closed_form(original, ds.train.x, ds.train.y, splits.forget, splits.retain)
    x, y = ds.train.x[splits.retain], ds.train.y[splits.retain]
    fisher = per_example_fisher(original, Batches(x, y, batch_size=7, shuffle=False))
    diag = torch.cat([fisher["weight"].reshape(-1), fisher["bias"]]).double() * len(y) / len(ds.train.y)
    assert torch.allclose(diag, torch.diagonal(hess), rtol=1e-4, atol=1e-8)


def test_both_options_move_towards_the_retrained_solution(toy):
    ds, splits, original, retrained = toy
    target, start = _flat(retrained), _flat(original)
    dist = {}
    for h in ("exact", "diag_fisher"):
        res = run_method(get_method("influence", {"hessian": h, "damping": str(LAM)}), original, ds, splits,
                         RunContext(seed=0))
        dist[h] = float((_flat(res.model) - target).norm())
    d0 = float((start - target).norm())
    assert dist["exact"] < 0.1 * d0  # a Newton step on a nearly quadratic objective
    assert dist["diag_fisher"] < d0


def test_exact_refuses_large_models(prepared_class3):
    prep = prepared_class3
    with pytest.raises(ExpungeError, match="max_exact_params"):
        run_method(get_method("influence", {"hessian": "exact"}), prep.original.model, prep.dataset, prep.splits,
                   RunContext(seed=0))


def test_forgets_a_class_and_keeps_utility(prepared_class3):
    prep = prepared_class3
    res = run_method(get_method("influence", {}), prep.original.model, prep.dataset, prep.splits, RunContext(seed=0))
    acc_f, acc_r = split_accuracy(res.model, prep, "forget"), split_accuracy(res.model, prep, "retain")
    assert acc_f < 0.9 and acc_r > 0.9  # measured 0.74 / 0.97 with the defaults
    assert res.notes["relative_step"] > 0
