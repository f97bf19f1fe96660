"""End to end on the fictitious-facts data (issue 26): the contract suites' facts-tiny request (prepared_llm), its
Original trained a little further so that it has memorised the answers, and NPO through the runner."""

from __future__ import annotations

import copy

import pytest
import torch

from expunge.methods.base import RunContext, get_method
from expunge.protocols.runner import run_method
from expunge.tasks.token_logprobs import answer_nll, lm_loss


def answer_probability(model, x, y) -> float:
    """Mean over examples of exp(−ℓ̄): the metrics' "probability"."""
    with torch.no_grad():
        return float(torch.exp(-answer_nll(model.eval()(x), y)).mean())


@pytest.fixture(scope="module")
def memorised_facts(prepared_llm):
    """prepared_llm's Original after 60 more full-batch AdamW steps on every training row (≈ 3 s): forget-answer
    probability ≈ 0.97 instead of ≈ 0.35, so that forgetting is measurable."""
    model = copy.deepcopy(prepared_llm.original.model).train()
    tr = prepared_llm.dataset.train
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    torch.manual_seed(0)
    for _ in range(60):
        opt.zero_grad()
        lm_loss(model(tr.x), tr.y).backward()
        opt.step()
    return model.eval()


def test_npo_lowers_forget_answer_probability_while_retain_utility_stays_within_bound(prepared_llm,
                                                                                       memorised_facts):
    prep, original = prepared_llm, memorised_facts
    tr = prep.dataset.train
    (xf, yf), (xr, yr) = (tr.x[prep.splits.forget], tr.y[prep.splits.forget]), \
        (tr.x[prep.splits.retain], tr.y[prep.splits.retain])
    pf0, pr0 = answer_probability(original, xf, yf), answer_probability(original, xr, yr)
    assert pf0 > 0.9 and pr0 > 0.8  # the facts are memorised
    # lr 7e-4 and retain weight α = 3: after the facts data changed (perturbed answers in the paraphrase template,
    # new token ids), lr 5e-4 left 0.71 of the forget probability on this half-trained fixture and 7e-4 alone cost
    # the retained answers 11%
    npo = get_method("npo", {"lr": "7e-4", "alpha": "3"})
    res = run_method(npo, original, prep.dataset, prep.splits, RunContext(seed=0))
    pf1, pr1 = answer_probability(res.model, xf, yf), answer_probability(res.model, xr, yr)
    assert pf1 < 0.7 * pf0  # the forgotten people's answers lost probability
    assert pr1 > 0.9 * pr0  # the retained people's and world facts' answers kept theirs (bound: −10 %)
    n_forget = prep.splits.forget.size
    assert res.access["forget_seen"] == 10 * n_forget and res.access["retain_seen"] > 0
