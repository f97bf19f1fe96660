"""SSD: the dampening obeys θ ← θ·min(1, λ·I_D/I_f) for I_f > α·I_D; the full-set importance is cached."""

from __future__ import annotations

from copy import deepcopy

import torch
from torch import nn

from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batches
from expunge.methods.base import RunContext, get_method
from expunge.methods.ssd import dampen, diagonal_fisher
from expunge.protocols.runner import run_method
from expunge.store.artifacts import state_hash


def test_dampening_formula_on_hand_made_model():
    model = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0, -3.0, 4.0]]))
    i_full = {"weight": torch.tensor([[1.0, 1.0, 0.0, 1.0]])}
    i_forget = {"weight": torch.tensor([[5.0, 20.0, 2.0, 0.0]])}
    # alpha = 10: scalar 0 (5 > 10? no), 1 (20 > 10 yes: factor min(1, 0.5*1/20) = 0.025),
    # 2 (2 > 0 yes: factor 0), 3 (I_f = 0: never selected)
    selected = dampen(model, i_full, i_forget, alpha=10.0, lam=0.5)
    assert selected == {"weight": 2}
    assert torch.allclose(model.weight, torch.tensor([[1.0, 2.0 * 0.025, 0.0, 4.0]]))


def test_factor_is_capped_at_one():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(3.0)
    dampen(model, {"weight": torch.tensor([[1.0]])}, {"weight": torch.tensor([[20.0]])}, alpha=10.0, lam=100.0)
    assert float(model.weight.detach()) == 3.0  # λ·I_D/I_f = 5 > 1 -> unchanged, never amplified


def test_forget_equals_full_set_selects_nothing(prepared_class3):
    model = prepared_class3.original.model
    tr = prepared_class3.dataset.train
    b = Batches(tr.x, tr.y, batch_size=64, shuffle=False)
    i = diagonal_fisher(model, b)
    copy = deepcopy(model)
    selected = dampen(copy, i, diagonal_fisher(model, b), alpha=1.5, lam=1.0)
    assert sum(selected.values()) == 0 and state_hash(copy) == state_hash(model)


def test_importance_is_the_mean_squared_batch_gradient():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    imp = diagonal_fisher(model, Batches(x, y, batch_size=5, shuffle=False))
    expected = torch.zeros_like(model.weight)
    for sl in (slice(0, 5), slice(5, 10)):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[sl]), y[sl]).backward()
        expected += model.weight.grad**2 / 2
    assert torch.allclose(imp["weight"], expected)


def test_full_set_importance_is_computed_once_and_cached(prepared_class3, monkeypatch):
    prep = prepared_class3
    calls = {"n": 0}
    real = UnlearningData.train_statistic

    def spy(self, name, compute, *, batch_size):
        def counted(b):
            calls["n"] += 1
            return compute(b)

        return real(self, name, counted, batch_size=batch_size)

    monkeypatch.setattr(UnlearningData, "train_statistic", spy)
    outs = []
    for forget in ("class:3", "class:5"):
        from expunge.data.request import ForgetRequest

        splits = ForgetRequest.parse(forget).resolve(prep.dataset)
        ctx = RunContext(seed=0, store=prep.store)
        res = run_method(get_method("ssd", {"alpha": "10"}), prep.original.model, prep.dataset, splits, ctx,
                         original_key=prep.original.key)
        outs.append(res)
    assert calls["n"] <= 1  # at most the first request computed it (an earlier test may already have)
    assert outs[0].access["train_stats"] == ["ssd_fisher_diag"]
    assert outs[1].access["retain_seen"] == 0  # a new request only reads its forget set


def test_ssd_declares_no_retain_access():
    from expunge.methods.ssd import SSD

    assert DataAccess.RETAIN not in SSD.access and DataAccess.FORGET in SSD.access


def test_ssd_forgets_a_class(prepared_class3):
    from expunge.protocols.pipeline import run_step

    record, _ = run_step(prepared_class3, "ssd", {"alpha": "10", "lam": "1"}, save=False)
    assert record.metrics["forget_acc"] < record.original["forget_acc"]
    assert record.notes["selected"] > 0


def test_current_full_importance_equals_the_cached_one_on_a_single_request(prepared_class3):
    """On the original, 'current' recomputes exactly what 'cached' stores: the same model, data and batch order."""
    prep = prepared_class3
    models, logs = [], []
    for how in ("cached", "current"):
        ctx = RunContext(seed=0, store=prep.store)
        m = get_method("ssd", {"alpha": "10", "full_importance": how})
        res = run_method(m, prep.original.model, prep.dataset, prep.splits, ctx, original_key=prep.original.key)
        models.append(state_hash(res.model))
        logs.append((m.access, res.access))
    assert models[0] == models[1]
    (cached_access, cached_log), (current_access, current_log) = logs
    assert DataAccess.RETAIN not in cached_access and current_access == DataAccess.FORGET | DataAccess.RETAIN
    n_f, n_r = prep.splits.forget.size, prep.splits.retain.size
    assert current_log["train_stats"] == [] and current_log["retain_seen"] == n_r
    assert current_log["forget_seen"] == 2 * n_f  # once in the full-set pass, once for I_f
    assert cached_log["retain_seen"] == 0 and cached_log["forget_seen"] == n_f


def test_current_full_importance_reads_what_the_model_still_holds(digits, monkeypatch):
    """At request 2 of a stream, I_D is taken on the model it is given over D \\ F_1 (retain ∪ F_2), not over D."""
    import expunge.methods.ssd as ssd_module
    from expunge.scenarios.base import get_scenario
    from expunge.scenarios.sequential import build_requests

    params = get_scenario("sequential", {"base": "random:0.1", "k": 2}).params
    splits = build_requests(digits, params, seed=0)[0][1]
    seen: list[tuple[nn.Module, int]] = []
    real = ssd_module.diagonal_fisher

    def spy(model, batches):
        seen.append((model, batches.n_examples))
        return real(model, batches)

    monkeypatch.setattr(ssd_module, "diagonal_fisher", spy)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    data = UnlearningData(digits, splits, DataAccess.FORGET | DataAccess.RETAIN)
    out = get_method("ssd", {"full_importance": "current"}).unlearn(model, data, RunContext(seed=0))
    n_f1 = round(0.1 * len(digits.train))
    assert [n for _, n in seen] == [len(digits.train) - n_f1, splits.forget.size]
    assert all(m is model for m, _ in seen) and out is model
    assert data.log.retain_seen == splits.retain.size and data.log.forget_seen == 2 * splits.forget.size
