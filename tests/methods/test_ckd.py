"""ckd: the choices its docstring names — masked "away" targets, distillation on the buffer's old-class logits only
(weight 0 = replay fine-tuning bit for bit), CE only on retain rows, and that it forgets a class while keeping the
others on a plain request."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from expunge.data.access import DataAccess
from expunge.methods._shared.replay import replay_fit
from expunge.methods.base import RunContext, get_method
from expunge.methods.ckd import CKD, away_targets
from expunge.models import ModelSpec
from expunge.protocols.runner import run_method
from expunge.train.loop import TrainRecipe

SPEC = ModelSpec("mlp_small", (1, 8, 8), 10)
RECIPE = TrainRecipe(epochs=3, batch_size=16, optimizer="adam", lr=1e-2)


def test_away_targets_remove_the_forgotten_classes_and_keep_the_ranking():
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0], [0.0, 2.0, 1.0, 0.5]])
    t = away_targets(logits, [0], 1.0)
    assert torch.all(t[:, 0] == 0) and torch.allclose(t.sum(1), torch.ones(2))
    assert torch.allclose(t[:, 1:], F.softmax(logits[:, 1:], 1))  # the rest renormalised = softmax without class 0
    soft = away_targets(logits, [], 4.0)  # no class removed: only a softer copy of the teacher
    assert torch.equal(soft.argmax(1), logits.argmax(1))
    assert soft.max(1).values.lt(F.softmax(logits, 1).max(1).values).all()


def _data(seed: int, n: int, classes: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.tensor(classes)[torch.randint(len(classes), (n,), generator=g)]
    x = torch.randn(n, 1, 8, 8, generator=g) * 0.3 + y.view(-1, 1, 1, 1).float() / 3
    return x, y


def test_learning_with_zero_distillation_is_replay_fine_tuning_bit_for_bit():
    base = SPEC.build(seed=0)
    new, buffer = _data(1, 64, (2, 3)), _data(2, 32, (0, 1))
    a, b = copy.deepcopy(base), copy.deepcopy(base)
    get_method("ckd", {"kd_weight": "0"}).learn(a, new, buffer, old_classes=(0, 1), recipe=RECIPE, seed=5)
    replay_fit(b, new, buffer, RECIPE, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_distillation_keeps_the_buffer_old_class_outputs_closer_to_the_previous_model():
    previous = SPEC.build(seed=0)
    replay_fit(previous, _data(3, 128, (0, 1)), _data(3, 0, (0, 1)), RECIPE, seed=1)  # learn task 1
    new, buffer = _data(4, 128, (2, 3)), _data(5, 32, (0, 1))
    kd, plain = copy.deepcopy(previous), copy.deepcopy(previous)
    get_method("ckd", {"kd_weight": "4"}).learn(kd, new, buffer, old_classes=(0, 1), recipe=RECIPE, seed=2)
    get_method("ckd", {"kd_weight": "0"}).learn(plain, new, buffer, old_classes=(0, 1), recipe=RECIPE, seed=2)
    with torch.no_grad():
        ref = F.log_softmax(previous(buffer[0])[:, :2] / 2, 1)

        def gap(m):
            return float(F.kl_div(F.log_softmax(m(buffer[0])[:, :2] / 2, 1), ref, log_target=True,
                                  reduction="batchmean"))

        assert gap(kd) < gap(plain)


def test_forgets_a_class_and_keeps_the_rest(prepared_class3):
    prep = prepared_class3
    assert CKD.access == DataAccess.FORGET | DataAccess.RETAIN
    ctx = RunContext(seed=0, model_spec=prep.spec, recipe=prep.recipe)
    res = run_method(get_method("ckd", {"epochs": "2"}), prep.original.model, prep.dataset, prep.splits, ctx)
    tr = prep.dataset.train
    with torch.no_grad():
        acc = {k: float((res.model(tr.x[pos]).argmax(1) == tr.y[pos]).float().mean())
               for k, pos in (("forget", prep.splits.forget), ("retain", prep.splits.retain))}
        never = (res.model(tr.x[prep.splits.forget]).argmax(1) == 3).float().mean()
    assert acc["forget"] < 0.05 and float(never) < 0.05 and acc["retain"] > 0.9
    assert res.notes["removed_classes"] == [3]


@pytest.mark.parametrize("ce_weight", ["0", "1"])
def test_a_student_equal_to_its_teacher_on_retain_rows_only_moves_through_the_ce_term(prepared_class3, ce_weight):
    """A forget row without a removed class at τ_f = 1 and the retain rows have the teacher's own outputs as targets:
    the KL term's gradient is zero at the start, so (under SGD; Adam would normalise float noise into steps) only
    the CE term moves the model."""
    prep = prepared_class3
    from expunge.data.request import Splits

    ids = prep.dataset.train.ids
    one = Splits.from_ids(prep.dataset, ids[prep.splits.forget[:1]], retain_ids=ids[prep.splits.retain[:64]])
    ctx = RunContext(seed=0, model_spec=prep.spec, recipe=prep.recipe)
    m = get_method("ckd", {"epochs": "1", "ce_weight": ce_weight, "forget_temperature": "1",
                                "optimizer": "sgd", "lr": "0.1", "weight_decay": "0"})
    res = run_method(m, prep.original.model, prep.dataset, one, ctx)
    moved = max(float((p - q).abs().max()) for p, q in zip(res.model.state_dict().values(),
                                                         prep.original.model.state_dict().values(), strict=True))
    assert moved > 1e-4 if ce_weight == "1" else moved < 1e-5
