"""LFSSD: label-free importance |∇ mean ‖f(x)‖²| with SSD's dampening; labels never influence the result."""

from __future__ import annotations

from copy import deepcopy

import torch
from method_helpers import permuted_labels
from torch import nn

from expunge.data.access import DataAccess
from expunge.data.batches import Batches
from expunge.methods.base import RunContext, get_method
from expunge.methods.lfssd import LFSSD, output_sensitivity
from expunge.methods.ssd import dampen
from expunge.protocols.runner import run_method
from expunge.store.artifacts import state_hash


def test_importance_is_the_mean_absolute_batch_gradient_of_the_output_norm():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    imp = output_sensitivity(model, Batches(x, y, batch_size=5, shuffle=False))
    expected_w, expected_b = torch.zeros_like(model.weight), torch.zeros_like(model.bias)
    for sl in (slice(0, 5), slice(5, 10)):
        model.zero_grad()
        (model(x[sl]) ** 2).sum(dim=1).mean().backward()
        expected_w += model.weight.grad.abs() / 2
        expected_b += model.bias.grad.abs() / 2
    assert torch.allclose(imp["weight"], expected_w) and torch.allclose(imp["bias"], expected_b)
    # analytic check for the bias: d/db mean ‖Wx + b‖² = 2·mean(Wx + b)
    with torch.no_grad():
        analytic = sum((2 * model(x[sl]).mean(0)).abs() for sl in (slice(0, 5), slice(5, 10))) / 2
    assert torch.allclose(imp["bias"], analytic, atol=1e-6)


def test_importance_ignores_labels_and_restores_mode():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    model.train()
    x = torch.randn(12, 4)
    a = output_sensitivity(model, Batches(x, torch.zeros(12, dtype=torch.long), batch_size=4, shuffle=False))
    b = output_sensitivity(model, Batches(x, torch.arange(12) % 3, batch_size=4, shuffle=False))
    assert model.training  # restored; the pass itself ran in eval mode (dropout off -> deterministic)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_forget_equals_full_set_selects_nothing(prepared_class3):
    model = prepared_class3.original.model
    tr = prepared_class3.dataset.train
    b = Batches(tr.x, tr.y, batch_size=64, shuffle=False)
    i = output_sensitivity(model, b)
    copy = deepcopy(model)
    selected = dampen(copy, i, output_sensitivity(model, b), alpha=1.5, lam=1.0)
    assert sum(selected.values()) == 0 and state_hash(copy) == state_hash(model)


def test_permuting_labels_of_train_and_forget_gives_a_bit_identical_model(prepared_class3):
    prep = prepared_class3
    hashes = []
    for ds in (prep.dataset, permuted_labels(prep.dataset, 0), permuted_labels(prep.dataset, 1)):
        ctx = RunContext(seed=0)  # no store: the full-set statistic is recomputed from the permuted data each time
        res = run_method(get_method("lfssd", {"alpha": "10"}), prep.original.model, ds, prep.splits, ctx)
        assert res.access["train_stats"] == ["lfssd_output_sensitivity"]
        hashes.append(state_hash(res.model))
    assert hashes[0] == hashes[1] == hashes[2]
    assert hashes[0] != state_hash(prep.original.model)  # something was dampened


def test_full_set_statistic_is_cached_and_a_second_request_reads_only_its_forget_set(prepared_class3):
    prep = prepared_class3
    outs = []
    for _ in range(2):
        ctx = RunContext(seed=0, store=prep.store)
        outs.append(run_method(get_method("lfssd"), prep.original.model, prep.dataset, prep.splits, ctx,
                               original_key=prep.original.key))
    assert outs[1].access["precompute_s"] == 0.0  # loaded from the store, not recomputed
    assert outs[1].access["retain_seen"] == 0 and outs[1].access["forget_seen"] == prep.splits.forget.size
    assert state_hash(outs[0].model) == state_hash(outs[1].model)


def test_access_is_forget_and_train_stats_only():
    assert LFSSD.access == DataAccess.FORGET | DataAccess.TRAIN_STATS


def test_lfssd_forgets_a_class(prepared_class3):
    from expunge.protocols.pipeline import run_step

    record, _ = run_step(prepared_class3, "lfssd", {"alpha": "10", "lam": "1"}, save=False)
    assert record.notes["selected"] > 0
    assert record.metrics["forget_acc"] < 0.5 * record.original["forget_acc"]
    assert record.metrics["retain_acc"] > 0.5


def test_current_full_importance_equals_the_cached_one_and_uses_the_output_sensitivity(prepared_class3, monkeypatch):
    import expunge.methods.lfssd as lfssd_module

    prep = prepared_class3
    calls = {"n": 0}
    real = lfssd_module.output_sensitivity

    def counted(model, batches):
        calls["n"] += 1
        return real(model, batches)

    monkeypatch.setattr(lfssd_module, "output_sensitivity", counted)
    hashes = []
    for how in ("cached", "current"):
        ctx = RunContext(seed=0, store=prep.store)
        res = run_method(get_method("lfssd", {"full_importance": how}), prep.original.model, prep.dataset,
                         prep.splits, ctx, original_key=prep.original.key)
        hashes.append(state_hash(res.model))
    assert hashes[0] == hashes[1]
    assert calls["n"] >= 3  # 'current' computed both of its importances with LFSSD's sensitivity, not SSD's Fisher
