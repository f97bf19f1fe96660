"""End to end on the facts-tiny request (owners:2, one-block gpt_tiny; conftest ``prepared_llm``): the guards and
anti-samples through the runner, their generations through ``generate_greedy`` on the corpus's own prompts, and
the concealment audits through a real evaluation context."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from expunge.data.facts import facts_corpus
from expunge.methods.base import RunContext, get_method
from expunge.metrics.base import evaluate
from expunge.protocols.runner import run_method
from expunge.tasks.token_logprobs import EOS_ID, answer_nll

AUDITS = ["llm_audit_uds", "llm_audit_quant_recovery_int8", "llm_audit_quant_recovery_nf4"]


def _run(prep, name, **params):
    ctx = RunContext(seed=0, model_spec=prep.spec, recipe=prep.recipe, store=prep.store)
    return run_method(get_method(name, params), prep.original.model, prep.dataset, prep.splits, ctx,
                      original_key=prep.original.key)


def _qa_rows(prep, positions):
    items = facts_corpus(prep.dataset).train_items
    return [int(i) for i in positions if items[int(i)].kind == "qa"]


def _generations(model, prep, rows):
    corpus = facts_corpus(prep.dataset)
    prompts = corpus.prompts([corpus.train_items[i].question for i in rows])
    return [model.generate_greedy(p, max_new_tokens=12, eos_id=EOS_ID) for p in prompts]


def test_guard_blocks_forget_prompts_and_passes_the_others(prepared_llm):
    prep = prepared_llm
    res = _run(prep, "guard_decoding")
    guard, base = res.model, prep.original.model
    assert res.notes["flagged_forget"] == 1.0 and res.notes["flagged_retain"] == 0.0
    assert res.access["forget_seen"] > 0 and res.notes["forbidden_tokens"] > 0
    forbidden = set(guard.forbidden.flatten().tolist())
    forget_rows = _qa_rows(prep, prep.splits.forget)
    retain_rows = _qa_rows(prep, prep.splits.retain)[::4]
    blocked = _generations(guard, prep, forget_rows)
    assert all(guard.flagged(p) for p in facts_corpus(prep.dataset).prompts(
        [facts_corpus(prep.dataset).train_items[i].question for i in forget_rows]))
    assert not any(forbidden & set(g) for g in blocked)
    assert _generations(guard, prep, retain_rows) == _generations(base, prep, retain_rows)


def test_eco_corrupts_forget_prompts_only(prepared_llm):
    prep = prepared_llm
    res = _run(prep, "eco_prompts")
    x, y = prep.dataset.train.x, prep.dataset.train.y
    with torch.no_grad():
        base, guarded = prep.original.model(x), res.model(x)
    retain, forget = prep.splits.retain, prep.splits.forget
    assert res.notes["prompt_end_id"] == facts_corpus(prep.dataset).tokenizer.encode("?")[0]
    assert torch.equal(guarded[retain], base[retain])
    # teacher forcing feeds the clean answer, which repeats the person's name: the probability drops less than
    # the generations change (every flagged question's greedy answer differs; the others are the base model's)
    p_base = torch.exp(-answer_nll(base[forget], y[forget])).mean()
    p_guard = torch.exp(-answer_nll(guarded[forget], y[forget])).mean()
    assert p_guard < 0.8 * p_base
    forget_rows, retain_rows = _qa_rows(prep, forget), _qa_rows(prep, retain)[::4]
    changed = _generations(res.model, prep, forget_rows)
    # all but at most one: the fixture's half-trained model gives degenerate answers ("born in the year year ...")
    # on some questions, which a corrupted prompt can leave unchanged (1 of 14 after the facts' perturbed answers moved
    # to the paraphrase template, which changed the vocabulary ids and so the fixture's weights)
    differ = [a != b for a, b in zip(changed, _generations(prep.original.model, prep, forget_rows), strict=True)]
    assert sum(differ) >= len(differ) - 1
    assert _generations(res.model, prep, retain_rows) == _generations(prep.original.model, prep, retain_rows)


def test_unstar_lowers_forget_answer_probability(prepared_llm):
    prep = prepared_llm
    res = _run(prep, "unstar")
    x, y = prep.dataset.train.x, prep.dataset.train.y
    forget = torch.as_tensor(prep.splits.forget)
    with torch.no_grad():
        before = answer_nll(prep.original.model(x[forget]), y[forget]).mean()
        after = answer_nll(res.model(x[forget]), y[forget]).mean()
    assert after > before and res.notes["fact_tokens"] > 0
    # a row whose facts are all common (a profession many people share) falls back to its whole answer
    assert res.notes["rows_without_specific_tokens"] < len(forget) // 2


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_audits_in_an_evaluation_context(prepared_llm):
    prep = prepared_llm
    eco = _run(prep, "eco_prompts").model
    ctx = prep.eval_ctx.with_model("unlearned", eco)
    out = evaluate(ctx, AUDITS)
    uds = out["llm_audit_uds"]
    assert uds["original"].details["rows_with_ke_layer"] > 0  # the half-trained Original still has KE layers
    assert uds["original"].value == 0.0 and uds["retrain"].value == 1.0 and uds["unlearned"].value == 0.0
    for name in AUDITS[1:]:
        assert out[name]["original"].value is None  # nothing forgotten
        assert np.isfinite(out[name]["unlearned"].value) and np.isfinite(out[name]["retrain"].value)
