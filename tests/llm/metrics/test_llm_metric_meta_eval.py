"""Known answers of the meta-evaluation of the llm metrics (faithfulness AUC, relearning and quantisation
robustness) and its table."""

from __future__ import annotations

import pytest

from expunge.metrics.functional.llm_meta_eval import (
    faithfulness_auc,
    harmonic_mean_of,
    knowledge,
    meta_evaluation_table,
    quantisation_robustness,
    quantisation_robustness_symmetric,
    relearn_robustness,
    relearn_robustness_symmetric,
)


def test_faithfulness_auc():
    assert faithfulness_auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert faithfulness_auc([0.1, 0.2], [0.9, 0.8]) == 0.0
    assert faithfulness_auc([0.5], [0.5]) == 0.5
    assert faithfulness_auc([0.1, 0.9], [0.5]) == 0.5
    assert faithfulness_auc([], [0.5]) is None


def test_robustness_known_answers():
    assert relearn_robustness(0.1, 0.5, 0.1, 0.3) == pytest.approx(0.5)  # Δ_unl 0.4, Δ_ret 0.2
    assert relearn_robustness(0.1, 0.2, 0.1, 0.4) == 1.0  # recovers slower than the oracle learns
    assert relearn_robustness(0.3, 0.3, 0.1, 0.4) == 1.0  # nothing recovered
    assert relearn_robustness(0.1, 0.5, 0.4, 0.3) == 0.0  # the oracle even loses: clipped at 0
    assert relearn_robustness_symmetric(0.1, 0.5, 0.1, 0.3) == pytest.approx(1 - 0.2 / 0.6)
    assert relearn_robustness_symmetric(0.2, 0.2, 0.3, 0.3) == 1.0
    assert quantisation_robustness(0.2, 0.4) == pytest.approx(0.5)
    assert quantisation_robustness(0.4, 0.2) == 1.0
    assert quantisation_robustness(-0.1, 0.2) is None
    assert quantisation_robustness_symmetric(0.2, 0.4) == pytest.approx(2 / 3)
    assert harmonic_mean_of([0.5, 1.0]) == pytest.approx(2 / 3)
    assert harmonic_mean_of([0.5, None]) is None and harmonic_mean_of([0.0, 1.0]) == 0.0


def test_knowledge_orientation():
    assert knowledge("llm_prob_forget", 0.7) == 0.7
    assert knowledge("llm_truth_ratio_forget", 0.25) == 0.75
    assert knowledge("llm_privleak", -100.0) == 1.0
    assert knowledge("llm_prob_forget", None) is None
    with pytest.raises(KeyError, match="orientation"):
        knowledge("llm_model_utility", 0.5)


def test_table_from_raw_values():
    m = "llm_prob_forget"
    values = {}
    for seed, (orig, ret) in enumerate([(0.9, 0.1), (0.8, 0.2)]):
        values[("original", "before", seed, m)] = orig
        values[("retrain", "before", seed, m)] = ret
        values[("unlearned", "before", seed, m)] = 0.2
        values[("unlearned", "relearn", seed, m)] = 0.6  # Δ_unl 0.4
        values[("retrain", "relearn", seed, m)] = ret + 0.2  # Δ_ret 0.2 ⇒ R = 0.5
        values[("unlearned", "int4", seed, m)] = 0.4  # Q = 0.5
        values[("unlearned", "int8", seed, m)] = 0.2  # Q = 1
    (row,) = meta_evaluation_table(values)
    assert row["metric"] == m and row["n_learned"] == 2 and row["n_never"] == 2
    assert row["faithfulness_auc"] == 1.0
    assert row["relearn_R"] == pytest.approx(0.5) and row["quant_int4_Q"] == pytest.approx(0.5)
    assert row["quant_int8_Q"] == 1.0
    assert row["robustness"] == pytest.approx(0.5)
    assert row["overall"] == pytest.approx(2 / 3)  # HM(1, 0.5)
    assert row["robustness_sym"] == pytest.approx(2 / 3)  # R_sym = Q_sym = 2/3
    # a metric without robustness runs: faithfulness only
    (bare,) = meta_evaluation_table({("original", "before", 0, m): 0.9, ("retrain", "before", 0, m): 0.1})
    assert bare["faithfulness_auc"] == 1.0 and bare["robustness"] is None and bare["overall"] is None
