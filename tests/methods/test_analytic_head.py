"""analytic_head is head-exact: after a request the head equals a ridge refit on φ(D_r) (float64, 1e-8), sequential
requests equal one joint request, φ is untouched, and removing rows the head never learned is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from method_helpers import accuracy
from torch import nn

from expunge.data.request import Splits
from expunge.errors import ExpungeError
from expunge.methods._shared.ridge_head import ridge_downdate, ridge_statistics
from expunge.methods.analytic_head import head_state, ridge_solution
from expunge.methods.base import RunContext, get_method
from expunge.protocols.runner import run_method

TOL = 1e-8


def _ridge(x: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor:
    """The refit the downdate must reproduce: solve (XᵀX + γI) W = XᵀY directly."""
    return torch.linalg.solve(x.T @ x + gamma * torch.eye(x.shape[1], dtype=x.dtype), x.T @ y)


def _design(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        feats = model.features(x).double()
    return torch.cat([feats, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)


def _run(prep, splits, model=None, **params):
    ctx = RunContext(seed=0, model_spec=prep.spec, recipe=prep.recipe, store=prep.store)
    return run_method(get_method("analytic_head", {k: str(v) for k, v in params.items()}),
                      model if model is not None else prep.original.model, prep.dataset, splits, ctx,
                      original_key=prep.original.key)


def test_downdate_equals_refit_on_synthetic_rows():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 6, generator=g, dtype=torch.float64)
    y = F.one_hot(torch.randint(0, 3, (200,), generator=g), 3).double()
    r, q = ridge_statistics([(x[:120], y[:120]), (x[120:], y[120:])], gamma=0.5)
    keep = torch.ones(200, dtype=torch.bool)
    keep[torch.arange(0, 200, 7)] = False
    r2, q2, pivot = ridge_downdate(r, q, x[~keep], y[~keep], chunk=5)
    assert (ridge_solution(r2, q2) - _ridge(x[keep], y[keep], 0.5)).abs().max() < TOL
    assert torch.equal(r2, r2.T) and 0 < pivot <= 1


def test_rows_never_learned_are_refused():
    x = torch.eye(3, dtype=torch.float64)
    r, q = ridge_statistics([(x, x)], gamma=1.0)
    with pytest.raises(ExpungeError, match="not positive definite"):
        ridge_downdate(r, q, 10 * torch.ones(1, 3, dtype=torch.float64), x[:1], chunk=4)


def test_head_equals_ridge_refit_on_retain_and_features_are_unchanged(prepared_random):
    prep = prepared_random
    res = _run(prep, prep.splits, chunk_size=50)
    model, tr = res.model, prep.dataset.train
    state = head_state(model.head)
    assert state is not None
    w = ridge_solution(state["analytic_R"], state["analytic_Q"])
    x_r = _design(prep.original.model, tr.x[prep.splits.retain])
    refit = _ridge(x_r, F.one_hot(tr.y[prep.splits.retain], prep.dataset.num_classes).double(), 1.0)
    assert (w - refit).abs().max() < TOL
    assert torch.equal(model.head.weight, w[:-1].T.float()) and torch.equal(model.head.bias, w[-1].float())
    before = prep.original.model.state_dict()
    after = model.state_dict()
    for name, value in before.items():
        if not name.startswith("head."):
            assert torch.equal(after[name], value), f"φ changed: {name}"
    assert res.access["retain_seen"] == 0 and res.access["forget_seen"] == prep.splits.forget.size
    assert res.notes["claim"] == "head-exact" and res.notes["rows_removed"] == prep.splits.forget.size


def test_sequential_requests_equal_one_joint_request(prepared_random):
    prep = prepared_random
    tr, forget = prep.dataset.train, prep.splits.forget
    first, second = forget[:60], np.concatenate([forget[60:], forget[:5]])  # forget[:5] is removed twice
    res1 = _run(prep, Splits.from_ids(prep.dataset, tr.ids[first]), chunk_size=16)
    res2 = _run(prep, Splits.from_ids(prep.dataset, tr.ids[second]), model=res1.model, chunk_size=16)
    joint = _run(prep, prep.splits)
    assert res2.notes["continued"] and res2.notes["rows_already_removed"] == 5
    assert res2.notes["rows_removed_total"] == forget.size
    s2, sj = head_state(res2.model.head), head_state(joint.model.head)
    assert s2 is not None and sj is not None
    assert (s2["analytic_R"] - sj["analytic_R"]).abs().max() < TOL
    assert (ridge_solution(s2["analytic_R"], s2["analytic_Q"]) -
            ridge_solution(sj["analytic_R"], sj["analytic_Q"])).abs().max() < TOL
    assert torch.equal(s2["analytic_removed"], sj["analytic_removed"])


def test_generic_module_uses_the_last_linear(prepared_class3):
    prep = prepared_class3
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    ctx = RunContext(seed=0)
    res = run_method(get_method("analytic_head"), net, prep.dataset, prep.splits, ctx)
    assert res.notes["head"] == "last-linear:3"
    tr, retain = prep.dataset.train, prep.splits.retain
    with torch.no_grad():
        feats = net[2](net[1](net[0](tr.x[retain]))).double()
    x_r = torch.cat([feats, torch.ones(len(feats), 1, dtype=torch.float64)], dim=1)
    refit = _ridge(x_r, F.one_hot(tr.y[retain], 10).double(), 1.0)
    out = res.model[3]
    assert (out.weight.double() - refit[:-1].T).abs().max() < 1e-6  # float32 head vs float64 refit
    assert torch.equal(res.model[1].weight, net[1].weight)


def test_forgets_a_class(prepared_class3):
    prep = prepared_class3
    res = _run(prep, prep.splits)
    tr, te, f = prep.dataset.train, prep.dataset.test, prep.splits.forget
    assert accuracy(res.model, tr.x[f], tr.y[f]) < 0.02  # class 3's column of Q' is 0: its score is exactly 0
    assert accuracy(res.model, te.x, te.y) > 0.8
