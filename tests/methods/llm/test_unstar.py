"""UnSTAR-style anti-samples (issue 26): the anti-answers replace exactly the fact tokens with the model's own top
alternative; fine-tuning on them makes the model stop producing the forget facts while the retained people's
answers stay."""

from __future__ import annotations

import copy

import torch
from llm_guard_toys import FakeData, forget_retain, greedy_all, rows, trained_model

from expunge.methods.base import RunContext, get_method
from expunge.methods.unstar import anti_samples, fact_positions
from expunge.tasks.token_logprobs import IGNORE_INDEX, answer_nll


def test_fact_tokens_are_the_person_specific_answer_tokens():
    fx, fy, _, ry = forget_retain()
    facts, fallback = fact_positions(fx, fy, ry, 0.05)
    assert fallback == 0
    assert sorted(fy[facts].tolist()) == [20, 21, 30, 31]  # birthplace / job; never "in", "works" or EOS


def test_anti_samples_change_only_fact_tokens_to_the_models_top_alternative():
    model = trained_model()
    fx, fy, _, ry = forget_retain()
    facts, _ = fact_positions(fx, fy, ry, 0.05)
    ax, ay, remembered = anti_samples(model, fx, fy, facts)
    assert remembered.all()
    assert torch.equal(ax[~facts], fx[~facts]) and (ax[facts] != fx[facts]).all()
    assert torch.equal(ay == IGNORE_INDEX, fy == IGNORE_INDEX) and torch.equal(ay[fy != IGNORE_INDEX],
                                                                                ax[fy != IGNORE_INDEX])
    with torch.no_grad():
        logits = model(fx)
    rows_, cols = facts.nonzero(as_tuple=True)
    ranked = logits[rows_, cols - 1]
    ranked[torch.arange(len(rows_)), fx[rows_, cols]] = float("-inf")
    ranked[:, :2] = float("-inf")  # never PAD or EOS
    ranked[:, [20, 21, 30, 31]] = float("-inf")  # nor a forget fact
    assert torch.equal(ax[rows_, cols], ranked.argmax(-1))


def test_unlearning_removes_the_forget_facts():
    original = trained_model()
    ctx = RunContext(seed=0)
    model = get_method("unstar", {"retain_weight": "0"}).unlearn(copy.deepcopy(original), FakeData(), ctx)
    x, y = rows()
    base, after = greedy_all(original, x, y), greedy_all(model, x, y)
    facts = {20, 21, 30, 31}
    assert all(facts & set(b) for b in base[:4]) and not any(facts & set(a) for a in after[:4])
    assert ctx.notes["remembered_per_round"][0] == 4 and ctx.notes["remembered_per_round"][-1] == 0


def test_the_retain_term_keeps_the_retained_answers():
    original = trained_model()
    ctx = RunContext(seed=0)
    model = get_method("unstar").unlearn(copy.deepcopy(original), FakeData(), ctx)  # retain_weight 1
    x, y = rows()
    base, after = greedy_all(original, x, y), greedy_all(model, x, y)
    assert not any({20, 21, 30, 31} & set(a) for a in after[:4])
    assert sum(a == b for a, b in zip(after[4:], base[4:], strict=True)) >= 15  # of 16 retained answers
    with torch.no_grad():
        p0, p1 = torch.exp(-answer_nll(original(x), y)), torch.exp(-answer_nll(model(x), y))
    assert p1[4:].mean() > p0[4:].mean() - 0.1


def test_same_seed_same_model():
    original = trained_model()
    a = get_method("unstar").unlearn(copy.deepcopy(original), FakeData(), RunContext(seed=3))
    b = get_method("unstar").unlearn(copy.deepcopy(original), FakeData(), RunContext(seed=3))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
