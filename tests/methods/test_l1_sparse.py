"""l1_sparse: γ = 0 is finetune bit for bit; γ > 0 shrinks ‖θ‖₁; γ_t decays linearly and is 0 for the last E₀ epochs."""

from __future__ import annotations

import pytest
from method_helpers import split_accuracy

from expunge.methods.base import RunContext, get_method
from expunge.methods.l1_sparse import l1_coefficient, l1_norm
from expunge.protocols.runner import run_method
from expunge.store.artifacts import state_hash

SHORT = {"epochs": "2", "lr": "0.01"}


def _run(prep, name, params, seed=2):
    return run_method(get_method(name, params), prep.original.model, prep.dataset, prep.splits, RunContext(seed=seed))


def test_gamma_zero_reproduces_finetune_bitwise(prepared_random):
    a = _run(prepared_random, "l1_sparse", {**SHORT, "gamma": "0"})
    b = _run(prepared_random, "finetune", SHORT)
    assert state_hash(a.model) == state_hash(b.model)


def test_positive_gamma_gives_a_smaller_l1_norm(prepared_random):
    plain = _run(prepared_random, "l1_sparse", {**SHORT, "gamma": "0"})
    sparse = _run(prepared_random, "l1_sparse", {**SHORT, "gamma": "1e-3"})
    n0, n1 = float(l1_norm(plain.model).detach()), float(l1_norm(sparse.model).detach())
    assert n1 < n0 - 5.0  # measured: 3190.3 -> 3172.6
    assert sparse.notes["l1_after"] < sparse.notes["l1_before"]


@pytest.mark.parametrize(("epochs", "e0", "expected"), [
    (4, 0, [1.0, 0.75, 0.5, 0.25]),
    (5, 2, [1.0, 2 / 3, 1 / 3, 0.0, 0.0]),
    (3, 3, [0.0, 0.0, 0.0]),  # E₀ = E: no l1 at all (the Unlearn-Sparse copy would use a constant γ here)
    (2, 5, [0.0, 0.0]),
])
def test_linear_decay_schedule(epochs, e0, expected):
    assert [l1_coefficient(1.0, t, epochs, e0) for t in range(epochs)] == pytest.approx(expected)


def test_schedule_is_applied_per_epoch(prepared_class3):
    res = _run(prepared_class3, "l1_sparse", {"epochs": "3", "no_l1_epochs": "1", "gamma": "1e-3"})
    assert res.notes["gammas"] == pytest.approx([1e-3, 5e-4, 0.0])


def test_forgets_a_class_and_keeps_utility(prepared_class3):
    prep = prepared_class3
    res = _run(prep, "l1_sparse", {"epochs": "5", "gamma": "5e-4"})
    acc_f, acc_r = split_accuracy(res.model, prep, "forget"), split_accuracy(res.model, prep, "retain")
    assert acc_f < 0.95 and acc_r > 0.9
