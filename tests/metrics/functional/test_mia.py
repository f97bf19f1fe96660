"""Known answers (spec/metrics.md section 3) and properties of expunge.metrics.functional.mia."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expunge.errors import DegenerateInputWarning
from expunge.metrics.functional.mia import (
    balanced_subsample,
    ce_loss,
    confidence,
    correctness,
    entropy,
    entropy_mia,
    indiscernibility,
    loss_lr_cv,
    mia_auc,
    mia_efficacy_svc_salun,
    modified_entropy,
    mufac_forgetting_score,
    nomus,
    threshold_attack_best,
    threshold_attack_yeom,
)

P = np.array([[0.8, 0.2]])


# ------------------------------------------------------------------------------------------------------------ features
def test_entropy_known_answer() -> None:
    assert entropy(np.log(P))[0] == pytest.approx(0.500402, abs=1e-6)
    assert entropy(P, from_probs=True)[0] == pytest.approx(0.500402, abs=1e-6)
    assert entropy([[0.0, 1.0]], from_probs=True)[0] == pytest.approx(0.0, abs=1e-9)


def test_loss_confidence_correctness() -> None:
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 1000.0, 0.0]])
    y = np.array([0, 0])
    loss0 = np.log(np.exp(2.0) + 2.0) - 2.0
    np.testing.assert_allclose(ce_loss(logits, y), [loss0, 100.0])  # second clipped to 100
    np.testing.assert_allclose(confidence(logits, y)[0], np.exp(-loss0))
    np.testing.assert_array_equal(correctness(logits, y), [1.0, 0.0])
    assert ce_loss(P, [1], from_probs=True)[0] == pytest.approx(-np.log(0.2))


def test_modified_entropy_known_answers() -> None:
    # y = 0: -(1-0.8) ln 0.8 - 0.2 ln(1-0.2) = -0.4 ln 0.8; y = 1: -0.8 ln 0.2 - 0.8 ln 0.2
    np.testing.assert_allclose(modified_entropy(np.log(np.vstack([P, P])), [0, 1]),
                               [-0.4 * np.log(0.8), -1.6 * np.log(0.2)])
    assert np.isfinite(modified_entropy([[1.0, 0.0]], [0], from_probs=True)[0])


def test_feature_shape_errors() -> None:
    with pytest.raises(ValueError):
        ce_loss(np.zeros((3, 2)), [0, 1])
    with pytest.raises(ValueError):
        confidence(np.zeros((1, 2)), [2])


# -------------------------------------------------------------------------------------------------------- AUC / helpers
def test_mia_auc_separable_and_degenerate() -> None:
    assert mia_auc([3.0, 4.0], [1.0, 2.0]) == pytest.approx(1.0)
    assert mia_auc([1.0, 2.0], [3.0, 4.0]) == pytest.approx(0.0, abs=1e-12)
    with pytest.warns(DegenerateInputWarning):
        assert mia_auc([1.0, 1.0], [1.0, 1.0]) == 0.5
    with pytest.warns(DegenerateInputWarning):
        assert mia_auc([], [1.0]) is None


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=30),
       st.lists(st.floats(0.001, 1e6), min_size=1, max_size=30))
def test_mia_auc_separable_property(nonmember: list[float], offsets: list[float]) -> None:
    members = max(nonmember) + np.asarray(offsets)
    assert mia_auc(members, nonmember) == pytest.approx(1.0)  # sklearn trapezoids may give 1 - 1e-16


def test_balanced_subsample() -> None:
    a, b = np.arange(100.0), np.arange(30.0)
    sa, sb = balanced_subsample(a, b, seed=3)
    assert sa.shape == sb.shape == (30, 1)
    np.testing.assert_array_equal(sb[:, 0], b)
    assert set(sa[:, 0]) <= set(a) and len(set(sa[:, 0])) == 30
    np.testing.assert_array_equal(sa, balanced_subsample(a, b, seed=3)[0])
    assert not np.array_equal(sa, balanced_subsample(a, b, seed=4)[0])


# ----------------------------------------------------------------------------------------------------------- loss-LR CV
def test_loss_lr_cv_known_answer_and_derived() -> None:
    res = loss_lr_cv(np.full(50, 5.0), np.full(60, 0.1))
    assert res["acc"] == 1.0 and res["auc"] == pytest.approx(1.0) and res["n_per_side"] == 50 and res["reason"] is None
    assert mufac_forgetting_score(res["acc"]) == 0.5
    assert nomus(0.6, res["acc"]) == pytest.approx(0.3)
    assert indiscernibility(res["acc"]) == pytest.approx(0.0)


def test_nomus_mufac_table() -> None:
    assert nomus(0.5951, forgetting_score=0.2136) == pytest.approx(0.58395)
    assert nomus(0.5951, 0.5 + 0.2136) == pytest.approx(0.58395)
    with pytest.raises(ValueError):
        nomus(0.5, 0.5, forgetting_score=0.0)


def test_loss_lr_cv_too_small() -> None:
    with pytest.warns(DegenerateInputWarning, match="n too small"):
        res = loss_lr_cv(np.ones(19), np.zeros(100))
    assert res["acc"] is None and res["auc"] is None and res["reason"].startswith("n too small")


def test_loss_lr_cv_is_seeded() -> None:
    rng = np.random.default_rng(5)
    f, t = rng.exponential(1.0, 300), rng.exponential(1.2, 200)
    assert loss_lr_cv(f, t, seed=7) == loss_lr_cv(f, t, seed=7)


@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.integers(0, 2**31 - 1))
def test_chance_level_on_identical_distributions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    f, t = rng.exponential(1.0, 2000), rng.exponential(1.0, 2000)
    assert mia_auc(f, t) == pytest.approx(0.5, abs=0.06)
    res = loss_lr_cv(f, t, seed=seed)
    assert res["acc"] == pytest.approx(0.5, abs=0.06) and res["auc"] == pytest.approx(0.5, abs=0.06)


# ------------------------------------------------------------------------------------------------------- SVC / entropy
def test_mia_efficacy_svc_salun_known_answers() -> None:
    retain, test = np.full(40, 0.99), np.full(30, 0.2)
    assert mia_efficacy_svc_salun(retain, test, np.full(25, 0.2)) == 1.0
    assert mia_efficacy_svc_salun(retain, test, np.full(25, 0.99)) == 0.0


def test_mia_efficacy_degenerate() -> None:
    with pytest.warns(DegenerateInputWarning):
        assert mia_efficacy_svc_salun(np.full(40, 0.9), np.full(5, 0.2), np.full(5, 0.2)) is None
    with pytest.warns(DegenerateInputWarning):
        assert mia_efficacy_svc_salun(np.full(40, 0.9), np.full(30, 0.2), np.zeros(0)) is None


@pytest.mark.parametrize("classifier", ["svc", "lr"])
def test_entropy_mia_known_answers(classifier: str) -> None:
    retain, test = np.full(40, 0.01), np.full(30, 1.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert entropy_mia(retain, test, np.full(20, 1.5), classifier=classifier) == 0.0  # type: ignore[arg-type]
        assert entropy_mia(retain, test, np.full(20, 0.01), classifier=classifier) == 1.0  # type: ignore[arg-type]


def test_entropy_mia_bad_classifier() -> None:
    with pytest.raises(ValueError):
        entropy_mia(np.ones(30), np.zeros(30), np.ones(3), classifier="knn")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------- thresholds
def test_threshold_best_known_answer() -> None:
    res = threshold_attack_best(-np.array([0.1, 0.2]), -np.array([1.0, 2.0]), min_per_side=2)
    assert res["balanced_acc"] == 1.0 and res["auc"] == pytest.approx(1.0) and res["optimistic"] is True
    assert -1.0 < res["threshold"] <= -0.2


def test_threshold_yeom_known_answer() -> None:
    res = threshold_attack_yeom([0.1, 0.2], [1.0, 2.0], mean_train_loss=0.15, min_per_side=2)
    assert res["acc"] == 0.75 and res["tpr"] == 0.5 and res["fpr"] == 0.0


def test_threshold_attacks_default_minimum() -> None:
    with pytest.warns(DegenerateInputWarning):
        assert threshold_attack_best([1.0, 2.0], [0.0, 0.5])["balanced_acc"] is None
    with pytest.warns(DegenerateInputWarning):
        assert threshold_attack_yeom([0.1, 0.2], [1.0, 2.0], 0.15)["reason"].startswith("n too small")


def test_threshold_best_chance_on_identical_distributions() -> None:
    rng = np.random.default_rng(0)
    res = threshold_attack_best(rng.normal(size=2000), rng.normal(size=3000))
    assert res["n_per_side"] == 2000
    assert res["auc"] == pytest.approx(0.5, abs=0.06) and res["balanced_acc"] < 0.56
