from __future__ import annotations

import copy
import math

import pytest
import torch

from expunge.methods._shared.lm import encode_refusals, mean_nll, reference_copy, refusal_rows, sequence_nll
from expunge.methods.base import RunContext, get_method
from expunge.methods.idkpo import dpo_loss
from expunge.tasks.token_logprobs import EOS_ID, IGNORE_INDEX, PAD_ID

SGD = {"optimizer": "sgd", "momentum": "0", "weight_decay": "0", "clip_grad_norm": "none"}
ONE_REFUSAL = "i do not know ."


def test_refusal_rows_keep_the_prompt_and_label_the_refusal_and_eos(fake_data):
    data = fake_data(n_forget=2, bio=1)
    xf, yf = data.forget
    (ids,) = encode_refusals(data.tokenizer, [ONE_REFUSAL])
    xe, ye, prompted = refusal_rows(xf, yf, [ids], torch.Generator())
    assert prompted.tolist() == [True, True, False]
    for i in range(2):
        assert torch.equal(xe[i, :3], xf[i, :3])  # the question
        assert xe[i, 3:3 + len(ids) + 1].tolist() == [*ids, EOS_ID]
        assert (xe[i, 4 + len(ids):] == PAD_ID).all()
        assert (ye[i, :3] == IGNORE_INDEX).all() and ye[i, 3:4 + len(ids)].tolist() == [*ids, EOS_ID]
    assert xe[2, :len(ids)].tolist() == ids  # a biography: the refusal from an empty prompt (masked by callers)


def test_refusals_are_drawn_per_row_from_the_generator(fake_data):
    data = fake_data(n_forget=8)
    templates = encode_refusals(data.tokenizer, ["i do not know .", "i have no idea ."])
    a = refusal_rows(*data.forget, templates, torch.Generator().manual_seed(0))[0]
    b = refusal_rows(*data.forget, templates, torch.Generator().manual_seed(0))[0]
    assert torch.equal(a, b) and len({tuple(r[3:5].tolist()) for r in a}) == 2


def test_dpo_at_the_reference_is_2_ln2_over_beta():
    zero = torch.zeros(3)
    assert float(dpo_loss(zero, zero, 0.1)) == pytest.approx(2 * math.log(2) / 0.1)


def test_at_the_reference_the_gradient_is_refusal_descent_plus_forget_ascent(tiny_lm, fake_data):
    model, data = tiny_lm(), fake_data()
    xf, yf = data.forget
    templates = encode_refusals(data.tokenizer, [ONE_REFUSAL])
    xi, yi, _ = refusal_rows(xf, yf, templates, torch.Generator())
    ref = reference_copy(model)
    with torch.no_grad():
        ri, rf = sequence_nll(ref(xi), yi), sequence_nll(ref(xf), yf)
    dpo_loss(ri - sequence_nll(model(xi), yi), rf - sequence_nll(model(xf), yf), 0.1).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    (sequence_nll(model(xi), yi) - sequence_nll(model(xf), yf)).mean().backward()
    for g, p in zip(grads, model.parameters(), strict=True):
        assert torch.allclose(g, p.grad, atol=1e-5)


@pytest.mark.parametrize("objective", ["dpo", "nll"])
def test_unlearn_raises_refusal_probability_and_lowers_forget_probability(tiny_lm, fake_data, objective):
    model, data = tiny_lm(), fake_data()
    xf, yf = data.forget
    templates = encode_refusals(data.tokenizer, [ONE_REFUSAL])
    xi, yi, _ = refusal_rows(xf, yf, templates, torch.Generator())
    out = get_method("idkpo", {"epochs": "3", "lr": "0.01", "batch_size": "4", "objective": objective,
                               "refusals": ONE_REFUSAL, "alpha": "0"}).unlearn(copy.deepcopy(model), data,
                                                                            RunContext())
    with torch.no_grad():
        assert mean_nll(out(xi), yi).mean() < mean_nll(model(xi), yi).mean()
        if objective == "dpo":
            assert mean_nll(out(xf), yf).mean() > mean_nll(model(xf), yf).mean()


def test_biography_rows_reduce_to_npo(tiny_lm, fake_data):
    """A row without a prompt has no refusal term: its loss is −(2/β) log σ(−β r_forget) (NPO)."""
    r = torch.tensor([-0.7])
    assert torch.allclose(dpo_loss(torch.zeros(1), r, 0.1),
                          -(2 / 0.1) * torch.nn.functional.logsigmoid(-0.1 * r).mean())
    data = fake_data(n_forget=0, bio=4)
    out = get_method("idkpo", {"epochs": "1", "lr": "0.01", "alpha": "0", "refusals": ONE_REFUSAL}) \
        .unlearn(tiny_lm(), data, RunContext())
    assert all(torch.isfinite(p).all() for p in out.parameters())
