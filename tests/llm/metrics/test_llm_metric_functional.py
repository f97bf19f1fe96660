"""Hand-computed known answers of the llm metrics' pure functions (spec §6 values and our own)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from expunge.metrics.functional.llm_memorization import (
    exact_memorization_score,
    extraction_strength_score,
    forget_quality_pvalue,
    harmonic_mean_utility,
    normalised_probability,
    probability_from_nll,
    rouge_l_recall,
    truth_ratio_forget_score,
    truth_ratio_retain_score,
    truth_ratios,
)
from expunge.metrics.functional.llm_privacy import (
    loss_attack_score,
    min_k_plus_plus_score,
    min_k_score,
    next_token_moments,
    privleak,
    zlib_attack_score,
)


def test_probability_and_normalised_probability():
    np.testing.assert_allclose(probability_from_nll([0.0, math.log(2)]), [1.0, 0.5])
    # P(a) = 0.5, P(ã) = 0.25 twice ⇒ 0.5 / (0.5 + 0.5)
    assert normalised_probability([math.log(2)], [[math.log(4), math.log(4)]])[0] == pytest.approx(0.5, abs=1e-9)
    # ragged perturbed sets: one wrong answer of probability 0.5 ⇒ 0.5
    out = normalised_probability([math.log(2), math.log(2)], [[math.log(4), math.log(4)], [math.log(2)]])
    np.testing.assert_allclose(out, [0.5, 0.5], atol=1e-9)
    with pytest.raises(ValueError, match="rows of perturbed"):
        normalised_probability([0.0, 0.0], [[1.0]])


def test_truth_ratio_spec_known_answer():
    r = truth_ratios([1.0], [[2.0, 2.0]])
    assert r[0] == pytest.approx(math.exp(-1), abs=1e-12)  # 0.367879
    assert truth_ratio_retain_score(r) == pytest.approx(0.632121, abs=1e-6)
    assert truth_ratio_forget_score(r) == pytest.approx(0.367879, abs=1e-6)  # min(R, 1/R)
    # the perturbed losses are averaged before exponentiating (a geometric mean of probabilities)
    assert truth_ratios([1.0], [[1.0, 3.0]])[0] == pytest.approx(math.exp(1.0 - 2.0))
    # forget side is symmetric in R ↔ 1/R; retain side clips at 0
    assert truth_ratio_forget_score([4.0, 0.25]) == pytest.approx(0.25)
    assert truth_ratio_retain_score([4.0, 0.5]) == pytest.approx(0.25)
    assert truth_ratio_retain_score([]) is None and truth_ratio_forget_score([]) is None


def test_forget_quality_spec_known_answers():
    assert forget_quality_pvalue([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1, abs=1e-12)  # D = 1, exact
    assert forget_quality_pvalue([0.3, 0.5, 0.9], [0.3, 0.5, 0.9]) == 1.0
    assert forget_quality_pvalue([], [1.0]) is None
    # invariant to the legacy convention 1/R (TOFU's aggregate_eval_stat.py)
    a, b = np.array([0.2, 0.4, 0.7, 1.3]), np.array([0.5, 0.9, 1.1, 2.0, 3.0])
    assert forget_quality_pvalue(a, b) == pytest.approx(forget_quality_pvalue(1 / a, 1 / b))


def test_model_utility_spec_known_answer():
    assert harmonic_mean_utility([0.5] * 8 + [1.0]) == pytest.approx(9 / 17, abs=1e-12)  # 0.529412
    assert harmonic_mean_utility([0.9, 0.0, 0.8]) == 0.0  # any component 0 ⇒ 0
    assert harmonic_mean_utility([0.5, 0.5]) == pytest.approx(0.5)
    assert harmonic_mean_utility([]) is None


def test_rouge_l_recall_spec_known_answer():
    assert rouge_l_recall("the cat", "the cat sat") == pytest.approx(2 / 3)
    assert rouge_l_recall("the cat sat", "the cat sat") == 1.0
    assert rouge_l_recall("", "the cat sat") == 0.0
    assert rouge_l_recall("cats sitting", "the cat sat") == pytest.approx(1 / 3)  # stemmer: cats → cat


def test_exact_memorization_and_extraction_strength():
    assert exact_memorization_score([5, 6, 9], [5, 6, 7]) == pytest.approx(2 / 3)
    assert extraction_strength_score([9, 6, 7], [5, 6, 7]) == pytest.approx(2 / 3)  # k = 1
    assert extraction_strength_score([5, 6, 7], [5, 6, 7]) == 1.0  # k = 0
    assert extraction_strength_score([5, 9, 7], [5, 6, 7]) == pytest.approx(1 / 3)  # k = 2
    assert extraction_strength_score([5, 6, 9], [5, 6, 7]) == 0.0  # nothing reproduced (OpenUnlearning: 1/3)
    assert exact_memorization_score([], []) is None and extraction_strength_score([], []) is None


def test_min_k_spec_known_answer():
    assert min_k_score([-1, -2, -3, -4, -5], k=0.4) == pytest.approx(-4.5)
    assert min_k_score([-1.0, -2.0], k=0.4) == -2.0  # ⌊0.8⌋ = 0 → at least one token
    assert math.isnan(min_k_score([], k=0.4))
    with pytest.raises(ValueError):
        min_k_score([-1.0], k=0.0)


def test_min_k_plus_plus_known_answer():
    lp = np.log([[0.8, 0.2]])
    mu, s2 = next_token_moments(lp)
    assert mu[0] == pytest.approx(0.8 * math.log(0.8) + 0.2 * math.log(0.2))
    assert s2[0] == pytest.approx(0.16 * math.log(4) ** 2)
    assert min_k_plus_plus_score([math.log(0.8)], mu, s2) == pytest.approx(0.5)
    assert min_k_plus_plus_score([math.log(0.2)], mu, s2) == pytest.approx(-2.0)
    # two tokens, k = 0.4 ⇒ the lower z of the two
    assert min_k_plus_plus_score(np.log([0.8, 0.2]), np.r_[mu, mu], np.r_[s2, s2]) == pytest.approx(-2.0)


def test_loss_and_zlib_scores_are_member_high():
    np.testing.assert_allclose(loss_attack_score([0.5, 2.0]), [-0.5, -2.0])
    assert zlib_attack_score(2.0, "") == pytest.approx(-0.25)  # zlib of nothing: 8 bytes


def test_privleak_known_answers_and_orientation():
    # the spec's example "AUC_U = 0.6, AUC_R = 0.5 ⇒ +20" is in MUSE's non-member-high AUC: member-high 0.4 vs 0.5
    assert privleak(0.4, 0.5) == pytest.approx(20.0)
    assert privleak(0.6, 0.5) == pytest.approx(-20.0)  # remembers more than the oracle: under-unlearning
    assert privleak(1.0, 0.5) == pytest.approx(-100.0)  # MUSE's target models ≈ −100
    assert privleak(0.55, 0.55) == 0.0
    assert privleak(0.7, 1.0) is None and privleak(None, 0.5) is None
