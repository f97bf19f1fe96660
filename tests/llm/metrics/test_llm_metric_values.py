"""The registered llm metrics on hand-set bigram models (conftest): values computed by hand from the logits (to
float32 precision: answer NLLs come from the shared float32 log-softmax).

"original" memorises every training item, "retrain" only the retain items (so its rows of forget tokens stay
uniform), the "unlearned" model has all-zero logits. V is the vocabulary size; a memorised row puts logit HOT on the
successor: log p = HOT − Z on it and −Z elsewhere, Z = log(e^HOT + V − 1); an unmemorised row gives −ln V to every
token.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import BigramLM, World, hot_logprobs, memoriser
from expunge.metrics.base import evaluate

LLM_METRICS = ("llm_prob_forget", "llm_prob_retain", "llm_prob_world", "llm_rouge_forget", "llm_rouge_retain",
               "llm_rouge_world", "llm_truth_ratio_forget", "llm_truth_ratio_retain", "llm_truth_ratio_world",
               "llm_forget_quality", "llm_model_utility", "llm_privleak", "llm_mia_loss_auc", "llm_mia_zlib_auc",
               "llm_mia_mink_auc", "llm_mia_minkpp_auc", "llm_extraction_strength", "llm_exact_memorization")


@pytest.fixture(scope="module")
def values(world: World) -> dict[str, dict[str, float | None]]:
    c = world.corpus
    ctx = world.ctx(original=memoriser(c, c.train_items), retrain=memoriser(c, world.retain_items()),
                    unlearned=BigramLM(c.tokenizer.vocab_size))
    res = evaluate(ctx, LLM_METRICS)
    return {name: {role: v.value for role, v in by_role.items()} for name, by_role in res.items()}


def _ln_v(world: World) -> float:
    return math.log(world.corpus.tokenizer.vocab_size)


def test_probability(world: World, values):
    hot, _ = hot_logprobs(world.corpus.tokenizer.vocab_size)
    v = values
    assert v["llm_prob_forget"]["original"] == pytest.approx(math.exp(hot), rel=1e-6)  # every answer token memorised
    assert v["llm_prob_forget"]["retrain"] == pytest.approx(math.exp(-_ln_v(world)), rel=1e-6)  # 1/V
    assert v["llm_prob_forget"]["unlearned"] == pytest.approx(math.exp(-_ln_v(world)), rel=1e-6)
    assert v["llm_prob_retain"]["retrain"] == pytest.approx(math.exp(hot), rel=1e-6)


def _original_lbar(world: World) -> tuple[float, float, float]:
    """ℓ̄ of (answer, paraphrase, perturbed) for a question the model memorised: the paraphrase [c, d, EOS] starts in
    the memorised question row (−Z) and continues in unseen rows (−ln V twice); a perturbed answer [e, EOS] likewise."""
    hot, cold = hot_logprobs(world.corpus.tokenizer.vocab_size)
    return -hot, (-cold + 2 * _ln_v(world)) / 3, (-cold + _ln_v(world)) / 2


def test_truth_ratios(world: World, values):
    ans, para, pert = _original_lbar(world)
    r_para = math.exp(para - pert)  # forget / retain sets: paraphrase vs perturbed
    assert values["llm_truth_ratio_forget"]["original"] == pytest.approx(min(r_para, 1 / r_para), rel=1e-6)
    assert values["llm_truth_ratio_forget"]["retrain"] == pytest.approx(1.0)  # all rows uniform: R = 1
    assert values["llm_truth_ratio_retain"]["original"] == pytest.approx(1 - r_para, rel=1e-6)
    assert values["llm_truth_ratio_retain"]["unlearned"] == 0.0  # uniform: R = 1 ⇒ max(0, 1 − R) = 0
    assert values["llm_truth_ratio_world"]["original"] == pytest.approx(1 - math.exp(ans - pert), rel=1e-6)


def test_forget_quality_of_the_oracle_against_itself_is_one(values):
    assert values["llm_forget_quality"]["retrain"] == 1.0
    # the Original's two forget ratios both differ from the oracle's (both 1): D = 1, exact p with n = m = 2 is 1/3
    assert values["llm_forget_quality"]["original"] == pytest.approx(1 / 3)


def test_rouge_memorised_and_not(values):
    assert values["llm_rouge_forget"]["original"] == 1.0 and values["llm_rouge_world"]["original"] == 1.0
    assert values["llm_rouge_forget"]["retrain"] == 0.0 and values["llm_rouge_retain"]["retrain"] == 1.0
    assert values["llm_rouge_forget"]["unlearned"] == 0.0


def test_model_utility_is_the_harmonic_mean_of_six(world: World, values):
    ans, para, pert = _original_lbar(world)
    p_ans, p_pert = math.exp(-ans), math.exp(-pert)
    parts = [p_ans, 1.0, 1 - math.exp(para - pert), p_ans / (p_ans + 2 * p_pert + 1e-10), 1.0,
             1 - math.exp(ans - pert)]
    assert values["llm_model_utility"]["original"] == pytest.approx(6 / sum(1 / x for x in parts), rel=1e-6)
    assert values["llm_model_utility"]["unlearned"] == 0.0  # retain truth-ratio score 0 ⇒ utility 0


def test_memorisation_scores(values):
    for name in ("llm_exact_memorization", "llm_extraction_strength"):
        assert values[name]["original"] == 1.0, name  # QA answers and the biography, EOS excluded
        assert values[name]["retrain"] == 0.0, name  # argmax of a zero row is token 0 (padding)


def test_membership_attacks_and_privleak(values):
    for name in ("llm_mia_loss_auc", "llm_mia_zlib_auc", "llm_mia_mink_auc", "llm_mia_minkpp_auc"):
        assert values[name]["original"] == 1.0, name  # memorised forget rows vs never-seen people
    for name in ("llm_mia_loss_auc", "llm_mia_mink_auc", "llm_mia_minkpp_auc"):
        assert values[name]["retrain"] == 0.5, name  # every row uniform: identical scores
    assert values["llm_privleak"]["original"] == pytest.approx(-100.0)  # ((1 − 1) − (1 − ½)) / ½
    assert values["llm_privleak"]["retrain"] == 0.0
    assert values["llm_privleak"]["unlearned"] == 0.0


class RefusingGuard(BigramLM):
    """A GUARD-style wrapper: same logits, but generation returns nothing."""

    def generate_greedy(self, prompt, *, max_new_tokens, eos_id):  # type: ignore[no-untyped-def]
        return []


def test_generation_goes_through_generate_greedy(world: World):
    c = world.corpus
    guard = RefusingGuard(c.tokenizer.vocab_size)
    guard.load_state_dict(memoriser(c, c.train_items).state_dict())
    res = evaluate(world.ctx(unlearned=guard), ["llm_rouge_forget", "llm_prob_forget"])
    assert res["llm_rouge_forget"]["unlearned"].value == 0.0  # the guard's generation is what is scored
    assert res["llm_prob_forget"]["unlearned"].value > 0.99  # while its logits still know the answers


def test_missing_inputs_give_none_with_reason(world: World):
    c = world.corpus
    res = evaluate(world.ctx(unlearned=memoriser(c, c.train_items)), ["llm_forget_quality", "llm_privleak"])
    for name in ("llm_forget_quality", "llm_privleak"):
        v = res[name]["unlearned"]
        assert v.value is None and "retrain" in v.reason, name
    from expunge.metrics.base import EvalContext

    bare = EvalContext(world.dataset, world.splits, {"unlearned": BigramLM(c.tokenizer.vocab_size)})
    v = evaluate(bare, ["llm_prob_forget"])["llm_prob_forget"]["unlearned"]
    assert v.value is None and "corpus" in v.reason


def test_collapsed_model_gives_none_with_reason(world: World):
    c = world.corpus
    nan = BigramLM(c.tokenizer.vocab_size)
    with np.errstate(all="ignore"):
        nan.table.data.fill_(float("nan"))
    res = evaluate(world.ctx(unlearned=nan, retrain=memoriser(c, world.retain_items())), LLM_METRICS)
    for name, by_role in res.items():
        v = by_role["unlearned"]
        assert v.value is None and v.reason, (name, v)
        assert by_role["retrain"].value is not None or name == "llm_mia_zlib_auc", name
