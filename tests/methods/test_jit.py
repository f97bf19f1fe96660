"""JiT: zero-shot (the gate refuses anything but the forget set); one step lowers the empirical Lipschitz ratio at the
forget points; gradients are zeroed per step unless the reference's accumulation is asked for."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from expunge.data.access import DataAccess, UnlearningData
from expunge.errors import UndeclaredDataAccess
from expunge.methods.base import RunContext, get_method
from expunge.methods.jit import JiT, _KeepGrads, lipschitz_loss
from expunge.protocols.runner import run_method
from expunge.train.loop import train_loop


def test_access_is_forget_only_and_the_gate_rejects_retain_data(prepared_class3):
    assert JiT.access == DataAccess.FORGET
    data = UnlearningData(prepared_class3.dataset, prepared_class3.splits, JiT.access)
    for probe in (lambda: data.retain_loader(8), data.retain_tensors,
                  lambda: data.retain_subset_loader(8, fraction=0.1),
                  lambda: data.retain_subset_loader(8, per_class=2),
                  lambda: data.train_statistic("x", lambda b: {}, batch_size=8)):
        with pytest.raises(UndeclaredDataAccess):
            probe()
    assert len(data.forget_tensors()[0]) == prepared_class3.splits.forget.size


def test_a_run_reads_only_the_forget_set(prepared_class3):
    prep = prepared_class3
    res = run_method(get_method("jit"), prep.original.model, prep.dataset, prep.splits, RunContext(seed=0))
    assert res.access["retain_seen"] == 0 and res.access["train_stats"] == []
    assert res.access["forget_seen"] == prep.splits.forget.size  # one pass


def _ratio(model: nn.Module, x: torch.Tensor, seed: int) -> float:
    model.eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        return float(lipschitz_loss(model, x, sigma=0.5, n_samples=25, generator=g)) / len(x)


def test_one_step_reduces_the_empirical_lipschitz_ratio_at_the_forget_points(prepared_class3):
    prep = prepared_class3
    params = {"lr": "1e-4", "batch_size": "100000"}  # the whole forget set in one batch -> exactly one SGD step
    res = run_method(get_method("jit", params), prep.original.model, prep.dataset, prep.splits, RunContext(seed=0))
    assert res.notes["steps"] == 1
    x = prep.dataset.train.x[prep.splits.forget]
    for seed in (11, 12):  # fresh perturbations, not the ones the step used
        before, after = _ratio(prep.original.model, x, seed), _ratio(res.model, x, seed)
        assert after < 0.99 * before


def test_loss_matches_its_definition_on_a_linear_map():
    torch.manual_seed(0)
    model = nn.Linear(5, 3, bias=False)
    x = torch.rand(4, 5)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    value = lipschitz_loss(model, x, sigma=0.3, n_samples=2, generator=g1)
    expected = 0.0
    for _ in range(2):
        xp = torch.clamp(x + 0.3 * torch.randn(x.shape, generator=g2), x.min(), x.max())
        d = x - xp
        with torch.no_grad():
            expected += float((model(d).norm(dim=1) / d.norm(dim=1)).sum())
    assert value.item() == pytest.approx(expected / 2, rel=1e-5)
    value.backward()
    assert model.weight.grad is not None  # gradient flows through f(x)


def test_identical_perturbation_contributes_zero_not_nan():
    model = nn.Linear(2, 2)
    x = torch.zeros(3, 2)  # min = max = 0: every perturbed copy is clamped back onto x
    value = lipschitz_loss(model, x, sigma=1.0, n_samples=3, generator=torch.Generator().manual_seed(0))
    assert value.item() == 0.0


def _two_steps(accumulate: bool) -> torch.Tensor:
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [(torch.tensor([[1.0]]),), (torch.tensor([[2.0]]),)]
    train_loop(model, batches, lambda m, b: m(b[0]).sum() ** 2, _KeepGrads(opt) if accumulate else opt)
    return model.weight.detach().clone()


def test_gradients_are_zeroed_per_step_unless_legacy_accumulation_is_requested():
    # loss_b(w) = (w·x_b)², grad = 2·w·x_b²: w0 = 1 -> g1 = 2 -> w1 = 0.8 -> g2 = 2·0.8·4 = 6.4
    assert _two_steps(False).item() == pytest.approx(0.8 - 0.1 * 6.4)
    assert _two_steps(True).item() == pytest.approx(0.8 - 0.1 * (2.0 + 6.4))  # reference: g1 applied twice


def test_legacy_flag_changes_the_result(prepared_class3):
    prep = prepared_class3
    outs = []
    for legacy in ("false", "true"):
        params = {"batch_size": "32", "legacy_accumulate_grads": legacy}
        res = run_method(get_method("jit", params), prep.original.model, prep.dataset, prep.splits, RunContext(seed=0))
        outs.append(torch.cat([p.detach().flatten() for p in res.model.parameters()]))
    assert not torch.equal(outs[0], outs[1])


def test_jit_forgets_a_class_with_its_defaults(prepared_class3):
    from expunge.protocols.pipeline import run_step

    record, _ = run_step(prepared_class3, "jit", save=False)
    assert record.metrics["forget_acc"] < 0.9 * record.original["forget_acc"]
    assert record.metrics["retain_acc"] > 0.8
