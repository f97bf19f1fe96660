"""The training loop's non-finite guard (fault injection): a step whose loss, gradient or update is not finite is
skipped and counted, the parameters stay the last finite ones, and training stops after ``max_nonfinite`` such steps;
an ordinary step is untouched by the guard."""

from __future__ import annotations

import torch
from torch import nn

from expunge.train.loop import train_loop


class NaNGradient(torch.autograd.Function):
    """Identity forward (a finite loss), NaN backward (a non-finite gradient)."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        return x.clone()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return torch.full_like(grad, float("nan"))


def batches(n: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    return [(torch.randn(4, 3, generator=gen), torch.zeros(4, dtype=torch.long)) for _ in range(n)]


def snapshot(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_a_finite_loss_with_a_nan_gradient_is_skipped_even_without_clipping():
    model = nn.Linear(3, 2)
    before = snapshot(model)
    log = train_loop(model, batches(), lambda m, b: NaNGradient.apply(m(b[0])).sum(),
                     torch.optim.SGD(model.parameters(), lr=0.1), max_nonfinite=4)
    assert log.skipped_nonfinite == 4 and log.stopped == "4 non-finite steps"
    assert all(torch.equal(a, b) for a, b in zip(before, snapshot(model), strict=True))


def test_a_finite_gradient_whose_update_overflows_is_rolled_back():
    """lr 1e30 × gradient ≈ 1e10 overflows float32: the weights would become inf; they are restored instead."""
    model = nn.Linear(3, 2)
    before = snapshot(model)
    log = train_loop(model, batches(), lambda m, b: 1e10 * m(b[0]).sum(),
                     torch.optim.SGD(model.parameters(), lr=1e30), max_nonfinite=3)
    assert log.skipped_nonfinite == 3 and log.stopped is not None
    assert all(torch.equal(a, b) for a, b in zip(before, snapshot(model), strict=True))


def test_after_a_rolled_back_step_training_continues_from_the_last_finite_parameters():
    """One bad step in the middle: it is skipped, the others are taken, and the result is finite and equals training
    on the good batches alone."""
    data = batches(4)
    poison = {id(data[1][0])}

    def loss(m: nn.Module, b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        out = m(b[0])
        return (NaNGradient.apply(out) if id(b[0]) in poison else out).pow(2).mean()

    guarded, plain = nn.Linear(3, 2), nn.Linear(3, 2)
    plain.load_state_dict(guarded.state_dict())
    log = train_loop(guarded, data, loss, torch.optim.SGD(guarded.parameters(), lr=0.1))
    train_loop(plain, [data[0], data[2], data[3]], lambda m, b: m(b[0]).pow(2).mean(),
               torch.optim.SGD(plain.parameters(), lr=0.1))
    assert log.skipped_nonfinite == 1 and log.stopped is None and log.steps == 4
    assert all(torch.equal(a, b) for a, b in zip(snapshot(guarded), snapshot(plain), strict=True))


def test_ordinary_steps_are_taken():
    model = nn.Linear(3, 2)
    before = snapshot(model)
    log = train_loop(model, batches(), lambda m, b: m(b[0]).pow(2).mean(), torch.optim.SGD(model.parameters(), lr=0.1))
    assert log.skipped_nonfinite == 0 and log.stopped is None and log.steps == 6
    assert not any(torch.equal(a, b) for a, b in zip(before, snapshot(model), strict=True))


def test_without_update_guard_the_overflowing_step_is_taken():
    """``guard_updates=False`` (what ``fit`` uses: supervised training, where the per-step checks would only cost
    time) checks the loss alone, so the same overflowing step goes through."""
    model = nn.Linear(3, 2)
    log = train_loop(model, batches(1), lambda m, b: 1e10 * m(b[0]).sum(), torch.optim.SGD(model.parameters(), lr=1e30),
                     guard_updates=False)
    assert log.skipped_nonfinite == 0
    assert not all(bool(torch.isfinite(p).all()) for p in model.parameters())
