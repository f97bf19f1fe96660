"""GUARD (methods.md §6.8): with an empty forbidden set decoding equals the base model's greedy decoding; a forbidden
single token never appears; the guard blocks forget-set prompts and passes the others (issue 26); teacher-forced
logits are the base model's; the guard round-trips through the store."""

from __future__ import annotations

import copy

import torch
from llm_guard_toys import FakeData, greedy_all, prompt_of, rows, spec, trained_model

from expunge.methods.base import RunContext, get_method
from expunge.methods.guard_decoding import GuardedDecodingLM, blocked_tokens, semantic_block
from expunge.protocols.runner import load_result
from expunge.store import ArtifactStore
from expunge.tasks.token_logprobs import EOS_ID, IGNORE_INDEX, PAD_ID

FORGET_FACTS = {20, 21, 30, 31}  # birthplaces and professions of persons 0 and 1


def _guard(**params):
    original = trained_model()
    ctx = RunContext(seed=0)
    guard = get_method("guard_decoding", {k: str(v) for k, v in params.items()}).unlearn(
        copy.deepcopy(original), FakeData(), ctx)
    return original, guard.eval(), ctx.notes


def test_token_matching_known_answers():
    phrases = torch.tensor([[5, 7, -1], [9, -1, -1]])
    assert blocked_tokens([], phrases) == {5, 9}
    assert blocked_tokens([3, 5], phrases) == {5, 7, 9}  # 7 continues "5 7"
    assert blocked_tokens([5, 3], phrases) == {5, 9}
    assert blocked_tokens([1], torch.empty(0, 1, dtype=torch.long)) == set()
    table = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.01], [0.99, 0.1], [-1.0, 0.0]])
    assert semantic_block(table, [2], 0.9).tolist() == [False, False, True, True, False]  # PAD (0) never blocked


def test_forbidden_set_is_the_forget_facts_not_template_words():
    _, guard, notes = _guard()
    assert set(guard.forbidden.flatten().tolist()) == FORGET_FACTS
    assert notes["flagged_forget"] == 1.0 and notes["flagged_retain"] == 0.0


def test_blocks_forget_prompts_and_passes_the_others():
    original, guard, _ = _guard()
    x, y = rows()
    base, guarded = greedy_all(original, x, y), greedy_all(guard, x, y)
    truths = [row[row != IGNORE_INDEX][:-1].tolist() for row in y[:4]]
    assert base[:4] == truths  # the Original answers the forget questions...
    assert all(not FORGET_FACTS & set(g) for g in guarded[:4])  # ...the guard never lets a forbidden token out
    assert guarded[4:] == base[4:]  # retained people's answers are the base model's greedy decoding
    with torch.no_grad():
        assert torch.equal(guard(x), original(x))  # generation-time only: teacher-forced logits unchanged


def test_empty_forbidden_set_decodes_as_the_base_model():
    original, guard, _ = _guard()
    empty = GuardedDecodingLM(guard.lm, guard.classifier, torch.empty(0, 1, dtype=torch.long),
                              torch.zeros_like(guard.semantic_block), semantic_penalty=10.0)
    x, y = rows()
    assert all(empty.flagged(prompt_of(x, y, i)) for i in range(4))  # the forget prompts are still flagged
    assert greedy_all(empty, x, y, max_new_tokens=6) == greedy_all(original, x, y, max_new_tokens=6)


def test_semantic_matching_penalises_neighbours():
    _, guard, _ = _guard()
    logits = torch.zeros(guard.semantic_block.shape[0])
    near = guard.semantic_block.clone()
    near[list(FORGET_FACTS)] = False
    if near.any():
        out = guard.restrict(logits.clone(), [])
        assert (out[near] == -guard.semantic_penalty).all()
    out = guard.restrict(logits.clone(), [])
    assert torch.isinf(out[list(FORGET_FACTS)]).all() and out[EOS_ID] == 0 and out[PAD_ID] == 0


def test_guard_round_trips_through_the_store(tmp_path):
    _, guard, _ = _guard()
    store = ArtifactStore(tmp_path)
    store.save_model("unlearned", "guard", guard, {"method": "guard_decoding"})
    restored, _ = load_result(store, "unlearned", "guard", get_method("guard_decoding"), spec())
    x, y = rows()
    assert torch.equal(restored.forbidden, guard.forbidden)
    assert greedy_all(restored, x, y) == greedy_all(guard, x, y)
