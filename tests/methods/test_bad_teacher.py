"""bad_teacher: KL to the competent teacher on retain rows (zero at S = T_s), to the incompetent one on forget rows."""

from __future__ import annotations

import torch

from expunge.data.access import DataAccess
from expunge.methods._shared.teacher_kl import frozen_copy, kl_to_targets
from expunge.methods.bad_teacher import BadTeacher, bad_teacher_targets
from expunge.methods.base import RunContext, get_method
from expunge.models import ModelSpec
from expunge.protocols.runner import run_method

SPEC = ModelSpec("mlp", (1, 8, 8), 10)  # no BatchNorm, no dropout


def _student_teachers():
    student = SPEC.build(seed=0)
    return student, frozen_copy(student), frozen_copy(SPEC.build(seed=1))


def test_student_equal_to_competent_teacher_on_retain_rows_has_zero_loss_and_gradient():
    student, good, bad = _student_teachers()
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    targets = bad_teacher_targets(good, bad, x, torch.zeros(32, dtype=torch.bool), temperature=2.0)
    loss = kl_to_targets(student(x), targets, 2.0)
    loss.backward()
    assert abs(float(loss.detach())) < 1e-6
    assert all(p.grad.abs().max() < 1e-6 for p in student.parameters())


def test_each_teacher_sees_only_the_rows_it_labels():
    _, good, bad = _student_teachers()
    seen = {"good": 0, "bad": 0}
    good.register_forward_hook(lambda m, inp, out: seen.__setitem__("good", seen["good"] + len(inp[0])))
    bad.register_forward_hook(lambda m, inp, out: seen.__setitem__("bad", seen["bad"] + len(inp[0])))
    x = torch.rand(30, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    flags = torch.arange(30) < 12
    targets = bad_teacher_targets(good, bad, x, flags, temperature=3.0)
    assert seen == {"good": 18, "bad": 12} and targets.shape == (30, 10)
    assert torch.allclose(targets.sum(1), torch.ones(30))
    only_forget = bad_teacher_targets(good, bad, x, torch.ones(30, dtype=torch.bool), temperature=3.0)
    assert seen == {"good": 18, "bad": 42} and torch.allclose(only_forget[:12], targets[:12])


def test_forget_rows_take_the_incompetent_teacher_and_move_the_student_towards_it():
    student, good, bad = _student_teachers()
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    flags = torch.arange(32) % 2 == 0
    targets = bad_teacher_targets(good, bad, x, flags, temperature=1.0)
    with torch.no_grad():
        assert torch.allclose(targets[flags], bad(x[flags]).softmax(1))
        assert torch.allclose(targets[~flags], good(x[~flags]).softmax(1))
    forget_targets = targets[flags]
    before = float(kl_to_targets(student(x[flags]), forget_targets, 1.0).detach())
    opt = torch.optim.SGD(student.parameters(), lr=0.5)
    kl_to_targets(student(x[flags]), forget_targets, 1.0).backward()
    opt.step()
    assert float(kl_to_targets(student(x[flags]), forget_targets, 1.0).detach()) < before


def test_reads_forget_and_a_30_percent_retain_subset_only(prepared_class3):
    prep = prepared_class3
    assert BadTeacher.access == DataAccess.FORGET | DataAccess.RETAIN_SUBSET
    ctx = RunContext(seed=0, model_spec=prep.spec, recipe=prep.recipe)
    res = run_method(get_method("bad_teacher"), prep.original.model, prep.dataset, prep.splits, ctx)
    assert res.access["forget_seen"] == prep.splits.forget.size
    assert res.access["retain_seen"] == round(0.3 * prep.splits.retain.size)


def test_forgets_a_class(prepared_class3):
    prep = prepared_class3
    ctx = RunContext(seed=0, model_spec=prep.spec, recipe=prep.recipe)
    res = run_method(get_method("bad_teacher", {"epochs": "3", "lr": "1e-3"}), prep.original.model, prep.dataset,
                     prep.splits, ctx)
    tr = prep.dataset.train
    with torch.no_grad():
        acc = {k: float((res.model(tr.x[pos]).argmax(1) == tr.y[pos]).float().mean())
               for k, pos in (("forget", prep.splits.forget), ("retain", prep.splits.retain))}
    assert acc["forget"] < 0.3 and acc["retain"] > 0.8
