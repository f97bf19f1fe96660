"""The attack view's arithmetic on hand-made scores with known answers: rates, strategies, TPR at low FPR."""

from __future__ import annotations

import numpy as np
import pytest

from expunge.dashboard import attack


def test_features_are_loss_entropy_and_true_label_confidence() -> None:
    z = np.array([[0.0, 0.0], [np.log(3.0), 0.0]])
    y = np.array([0, 0])
    f = attack.features(z, y, np.array([0.1, 0.2]), classification=True)
    assert f["confidence"] == pytest.approx([0.5, 0.75])
    assert f["entropy"] == pytest.approx([np.log(2), -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))])
    assert set(attack.features(z, y, np.zeros(2), classification=False)) == {"loss"}


def test_a_perfect_separation_is_found_by_both_strategies() -> None:
    forget, test = np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0, 3.0, 4.0])  # members: low loss
    s = attack.summary(forget, test, "below")
    assert s["max_success"]["accuracy"] == 1.0 and 0.3 <= s["max_success"]["threshold"] < 1.0
    assert s["max_attack_score"]["f1"] == 1.0
    assert s["tpr_at_fpr"] == {"0.01": None, "0.001": None}  # 4 test examples cannot resolve 1% FPR


def test_balanced_accuracy_ignores_the_sides_sizes() -> None:
    """Half the forget set and a quarter of the test set under the threshold: accuracy (0.5 + 0.75) / 2."""
    forget, test = np.array([1.0, 3.0]), np.array([1.0, 3.0, 3.0, 3.0] * 50)
    r = attack.evaluate(forget, test, 2.0, "below")
    assert (r["tpr"], r["fpr"], r["accuracy"]) == (0.5, 0.25, 0.625)
    assert r["f1"] == pytest.approx(2 * 0.5 / (0.5 + 0.25 + 1))


def test_confidence_attacks_from_above() -> None:
    forget, test = np.array([0.9, 0.95]), np.array([0.2, 0.3, 0.92])
    r = attack.evaluate(forget, test, 0.9, "above")
    assert (r["tpr"], r["fpr"]) == (1.0, pytest.approx(1 / 3))
    assert attack.exposure_order(forget, "above").tolist() == [1, 0]


def test_indistinguishable_sides_give_chance_and_everything_flagged_scores_two_thirds() -> None:
    rng = np.random.default_rng(0)
    v = rng.random(2000)
    s = attack.summary(v[:1000], v[1000:], "below")
    assert s["max_success"]["accuracy"] < 0.55
    assert s["max_attack_score"]["f1"] == pytest.approx(2 / 3, abs=0.02)


def test_tpr_at_low_fpr_counts_only_thresholds_within_the_fpr() -> None:
    test = np.arange(1, 201, dtype=float)         # 200 test losses 1..200
    forget = np.array([0.5, 0.6, 1.5, 50.0])      # two below every test loss, one between the 1st and 2nd
    # FPR <= 1% allows 2 test examples (1, 2) below the threshold: the forget losses 0.5, 0.6, 1.5 are caught
    assert attack.tpr_at_fpr(forget, test, "below", 0.01) == 0.75
    assert attack.tpr_at_fpr(forget, test, "below", 0.001) is None


def test_common_threshold_serves_both_models() -> None:
    a = (np.array([0.1, 0.2]), np.array([0.5, 0.6]))  # separable at 0.2 <= t < 0.5
    b = (np.array([0.3, 0.4]), np.array([0.7, 0.8]))  # separable at 0.4 <= t < 0.7
    t = attack.common_threshold([a, b], "below")
    assert 0.4 <= t < 0.5
    assert attack.evaluate(*a, t, "below")["accuracy"] == attack.evaluate(*b, t, "below")["accuracy"] == 1.0


def test_sweep_is_monotone_and_bounded() -> None:
    rng = np.random.default_rng(1)
    sw = attack.sweep(rng.random(300), rng.random(700) + 0.2, "below", points=50)
    assert len(sw["threshold"]) <= 50 and sw["threshold"] == sorted(sw["threshold"])
    assert sw["tpr"] == sorted(sw["tpr"]) and sw["fpr"] == sorted(sw["fpr"]) and sw["tpr"][-1] == 1.0
