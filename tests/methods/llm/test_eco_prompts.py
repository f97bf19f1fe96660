"""ECO (methods.md §6.7): un-flagged prompts give bit-identical logits to the base model, flagged prompts with σ = 0
likewise; with σ > 0 the forget answers become unlikely; the guard round-trips through the store."""

from __future__ import annotations

import copy

import pytest
import torch
from llm_guard_toys import QMARK, FakeData, forget_retain, greedy_all, prompt_of, rows, spec, trained_model
from torch import nn

from expunge.errors import ExpungeError
from expunge.methods._shared.prompt_guard import prompt_end_token, prompt_mask, prompt_mask_from_labels
from expunge.methods.base import RunContext, get_method
from expunge.protocols.runner import load_result
from expunge.store import ArtifactStore
from expunge.tasks.token_logprobs import IGNORE_INDEX, answer_nll


def _eco(**params):
    original = trained_model()
    ctx = RunContext(seed=0)
    guard = get_method("eco_prompts", {k: str(v) for k, v in params.items()}).unlearn(copy.deepcopy(original),
                                                                                      FakeData(), ctx)
    return original, guard.eval(), ctx.notes


def test_prompt_delimitation_from_input_ids_alone():
    x = torch.tensor([[3, 4, 12, QMARK, 5, 22, 1, 0], [9, 9, 9, 1, 0, 0, 0, 0]])  # a QA row and a bio row
    y = torch.tensor([[IGNORE_INDEX] * 4 + [5, 22, 1, IGNORE_INDEX], [9, 9, 9, 1] + [IGNORE_INDEX] * 4])
    assert prompt_end_token(x, y) == QMARK
    inferred, labelled = prompt_mask(x, QMARK), prompt_mask_from_labels(x, y)
    assert inferred[0].tolist() == [True] * 4 + [False] * 4  # up to and including "?"
    assert inferred[1].tolist() == [True] * 4 + [False] * 4  # no "?": every non-padding token
    assert torch.equal(inferred, labelled)
    # prompts ending with different tokens ("?" and 7): no common prompt-end token
    x2 = torch.tensor([[3, 4, 12, QMARK, 5, 22, 1, 0], [6, 12, 7, 5, 22, 1, 0, 0]])
    y2 = torch.tensor([[IGNORE_INDEX] * 4 + [5, 22, 1, IGNORE_INDEX], [IGNORE_INDEX] * 3 + [5, 22, 1, -100, -100]])
    assert prompt_end_token(x2, y2) == -1


def test_unflagged_rows_are_bit_identical_and_forget_answers_become_unlikely():
    original, guard, notes = _eco()
    fx = forget_retain()[0]
    assert notes["flagged_forget"] == 1.0 and notes["flagged_retain"] == 0.0
    x, y = rows()  # a mixed batch: forget rows (persons 0, 1) first
    with torch.no_grad():
        base, guarded = original(x), guard(x)
    n_f = len(fx)
    assert torch.equal(guarded[n_f:], base[n_f:])
    p_base = torch.exp(-answer_nll(base[:n_f], y[:n_f]))
    p_guard = torch.exp(-answer_nll(guarded[:n_f], y[:n_f]))
    assert (p_base > 0.9).all() and (p_guard < 0.5 * p_base).all()
    # the answer tokens' own embeddings are never corrupted: only the prompt positions differ in the input
    mask = guard.prompt_mask(fx)
    emb = guard.corrupted_embeds(fx, mask)
    assert torch.equal(emb[~mask], guard.embed(fx)[~mask]) and not torch.equal(emb[mask], guard.embed(fx)[mask])


def test_flagged_prompts_with_zero_sigma_are_bit_identical():
    original, guard, notes = _eco(sigma=0.0)
    x, y = rows()
    assert notes["flagged_forget"] == 1.0
    with torch.no_grad():
        assert torch.equal(guard(x), original(x))
    assert greedy_all(guard, x, y) == greedy_all(original, x, y)


def test_generation_is_guarded_only_on_flagged_prompts():
    original, guard, _ = _eco()
    x, y = rows()
    base, guarded = greedy_all(original, x, y), greedy_all(guard, x, y)
    assert guarded[4:] == base[4:]
    truths = [row[row != IGNORE_INDEX][:-1].tolist() for row in y[:4]]
    assert base[:4] == truths and all(g != t for g, t in zip(guarded[:4], truths, strict=True))


def test_guard_round_trips_through_the_store(tmp_path):
    _, guard, _ = _eco()
    store = ArtifactStore(tmp_path)
    store.save_model("unlearned", "eco", guard, {"method": "eco_prompts"})
    restored, _ = load_result(store, "unlearned", "eco", get_method("eco_prompts"), spec())
    x, y = rows()
    with torch.no_grad():
        assert torch.equal(restored(x), guard(x))
    assert greedy_all(restored, x, y) == greedy_all(guard, x, y)
    with pytest.raises(RuntimeError, match="no ECO guard"):
        get_method("eco_prompts").restore(spec(), trained_model().state_dict())


def test_refuses_a_model_that_is_not_a_causal_lm():
    with pytest.raises(ExpungeError, match="causal language model"):
        get_method("eco_prompts").unlearn(nn.Linear(2, 2), FakeData(), RunContext())


def test_scoring_and_generation_see_the_same_corruption():
    _, guard, _ = _eco()
    x, y = rows()
    with torch.no_grad():
        logits = guard(x)
    for i in range(4):  # the forget rows: generation's first token is teacher forcing's argmax after the prompt
        prompt = prompt_of(x, y, i)
        first = guard.generate_greedy(prompt, max_new_tokens=1, eos_id=1)
        assert first == [int(logits[i, len(prompt) - 1].argmax())] or (first == [] and
                                                                        int(logits[i, len(prompt) - 1].argmax()) == 1)
