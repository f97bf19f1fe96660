"""scrub: with no max-steps and γ = 0 the min-step's KL gradient vanishes at s = t; a max-step raises forget KL."""

from __future__ import annotations

from copy import deepcopy

import pytest
import torch

from expunge.data.batches import Batches
from expunge.methods._shared.teacher_kl import distill_kl, frozen_copy
from expunge.methods.base import RunContext, get_method
from expunge.methods.scrub import ScrubParams, max_step_loss, scrub_lr
from expunge.protocols.runner import run_method
from expunge.train.loop import make_optimizer, train_loop


def _forget_kl(model, teacher, x, temperature=4.0):
    with torch.no_grad():
        return float(distill_kl(model(x), teacher(x), temperature))


def test_no_max_steps_and_no_ce_keeps_theta(prepared_class3):
    prep = prepared_class3  # an MLP: no BatchNorm, no dropout
    params = {"msteps": "0", "gamma": "0", "weight_decay": "0", "lr": "0.5", "epochs": "2"}
    res = run_method(get_method("scrub", params), prep.original.model, prep.dataset, prep.splits,
                     RunContext(seed=0))
    assert res.notes["steps_max"] == 0 and res.notes["steps_min"] > 0
    for p, q in zip(res.model.parameters(), prep.original.model.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6, rtol=0)


def test_a_max_step_pass_increases_forget_kl(prepared_class3):
    prep = prepared_class3
    student, teacher = deepcopy(prep.original.model), frozen_copy(prep.original.model)
    # At s = t the KL gradient is zero: without BN/dropout a max-step only moves a student that weight decay or a
    # min-step has already moved. Start slightly off the teacher.
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1e-3 * torch.randn(p.shape, generator=g))
    tr = prep.dataset.train
    xf, yf = tr.x[prep.splits.forget], tr.y[prep.splits.forget]
    before = _forget_kl(student, teacher, xf)
    opt = make_optimizer(student.parameters(), "sgd", lr=0.01)
    train_loop(student, Batches(xf, yf, batch_size=32), max_step_loss(teacher, 4.0), opt, clip_grad_norm=1.0)
    assert _forget_kl(student, teacher, xf) > 2 * before > 0


def test_step_decay_schedule():
    p = ScrubParams(lr=1.0, lr_decay_epochs=(3, 5, 9), lr_decay_rate=0.1)
    assert [scrub_lr(e, p) for e in (1, 3, 4, 5, 6, 9, 10)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01, 0.001])


def test_forgets_a_class_and_keeps_retain(prepared_class3):
    prep = prepared_class3
    res = run_method(get_method("scrub", {"lr": "0.01"}), prep.original.model, prep.dataset, prep.splits,
                     RunContext(seed=0))
    assert res.notes["steps_max"] > 0
    tr = prep.dataset.train
    with torch.no_grad():
        acc = {k: float((res.model(tr.x[pos]).argmax(1) == tr.y[pos]).float().mean())
               for k, pos in (("forget", prep.splits.forget), ("retain", prep.splits.retain))}
    assert acc["forget"] < 0.3 and acc["retain"] > 0.9
