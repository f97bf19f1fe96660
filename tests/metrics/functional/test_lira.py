"""LiRA / U-LiRA functional forms (spec/metrics.md 4, 4.1, 4.2)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from expunge.errors import DegenerateInputWarning
from expunge.metrics.functional.lira import (
    gaussian_lr_score,
    global_threshold_score,
    logit_scaled_confidence,
    offline_lr_score,
    roc_summary,
    split_by_mask,
    ulira,
)

# --- φ ---------------------------------------------------------------------------------------------------------------


def test_phi_known_answer() -> None:
    assert logit_scaled_confidence(np.array([2.0, 0.0, 0.0]), np.array(0)) == pytest.approx(1.306853, abs=1e-6)
    assert 2 - math.log(2) == pytest.approx(1.306853, abs=1e-6)


def test_phi_matches_reference_form_and_is_stable() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (50, 10))
    y = rng.integers(0, 10, 50)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p_y = p[np.arange(50), y]
    ref = np.log(p_y + 1e-45) - np.log(1 - p_y + 1e-45)  # metric.py / score.py form
    np.testing.assert_allclose(logit_scaled_confidence(z, y), ref, atol=1e-9)
    big = logit_scaled_confidence(np.array([[1000.0, 0.0, 0.0], [0.0, 0.0, 1000.0]]), np.array([0, 0]))
    np.testing.assert_allclose(big, [1000 - math.log(2), -1000.0])
    batched = logit_scaled_confidence(np.stack([z, z]), np.stack([y, y]))  # leading dims
    assert batched.shape == (2, 50)


def test_phi_bad_inputs() -> None:
    with pytest.raises(ValueError):
        logit_scaled_confidence(np.zeros((3, 1)), np.zeros(3, int))
    with pytest.raises(ValueError):
        logit_scaled_confidence(np.zeros((3, 4)), np.array([0, 1, 4]))
    with pytest.raises(ValueError):
        logit_scaled_confidence(np.zeros((3, 4)), np.zeros(2, int))


# --- LiRA scores ----------------------------------------------------------------------------------------------------

IN = np.array([[0.0, 2.0], [0.0, 2.0]])  # median 1, std 1
OUT = np.array([[-1.0, 1.0], [-1.0, 1.0]])  # median 0, std 1


@pytest.mark.parametrize("fixed", [False, True])
def test_online_known_answer(fixed: bool) -> None:
    np.testing.assert_allclose(gaussian_lr_score([2.0, 0.5], IN, OUT, fixed_variance=fixed), [1.5, 0.0], atol=1e-12)


def test_fixed_variance_uses_out_std_for_out() -> None:
    """Reference bug not copied: σ_out is the std of the OUT values, not of the IN values."""
    s_in = np.array([[0.0, 2.0]])  # σ_in 1
    s_out = np.array([[-3.0, 3.0]])  # σ_out 3
    got = gaussian_lr_score([2.0], s_in, s_out, fixed_variance=True)[0]
    expected = norm.logpdf(2.0, 1.0, 1.0) - norm.logpdf(2.0, 0.0, 3.0)
    buggy = norm.logpdf(2.0, 1.0, 1.0) - norm.logpdf(2.0, 0.0, 1.0)
    assert got == pytest.approx(expected) and got != pytest.approx(buggy)


def test_fixed_variance_pools_over_examples_and_nan_is_not_applicable() -> None:
    phi = np.array([[0.0, 2.0, 9.0, 9.0], [4.0, 9.0, 6.0, 9.0]])
    member = np.array([[True, True, False, False], [True, False, True, False]])
    s_in, s_out = split_by_mask(phi, member)
    assert np.isnan(s_in[0, 2]) and s_out[0, 2] == 9.0
    # IN values {0, 2} and {4, 6}: medians 1 and 5, pooled std over all four values
    mu_expected = np.array([1.0, 5.0])
    sd_in = np.std([0.0, 2.0, 4.0, 6.0])
    with pytest.warns(DegenerateInputWarning):  # every OUT value is 9: pooled σ_out = 0, floored at 1e-30
        out = gaussian_lr_score([1.0, 5.0], s_in, s_out, fixed_variance=True)
    expected = norm.logpdf([1.0, 5.0], mu_expected, sd_in) - norm.logpdf([1.0, 5.0], 9.0, 1e-30)
    np.testing.assert_allclose(out, expected)


def test_augmentations_are_averaged() -> None:
    t = np.array([[2.0, 0.5]])  # one example, two queries
    s_in = np.stack([IN[:1], IN[:1]], axis=-1)
    s_out = np.stack([OUT[:1], OUT[:1]], axis=-1)
    assert gaussian_lr_score(t, s_in, s_out, fixed_variance=False)[0] == pytest.approx(0.75)


def test_zero_variance_warns_but_stays_finite() -> None:
    with pytest.warns(DegenerateInputWarning):
        s = gaussian_lr_score([1.0, 0.0], [[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]], fixed_variance=False)
    assert np.all(np.isfinite(s)) and s[0] > 0 > s[1]


def test_missing_group_raises() -> None:
    with pytest.raises(ValueError):
        gaussian_lr_score([1.0], [[np.nan, np.nan]], [[0.0, 1.0]], fixed_variance=False)
    with pytest.raises(ValueError):
        gaussian_lr_score([1.0, 2.0], IN[:1], OUT, fixed_variance=False)


def test_offline_and_global() -> None:
    assert offline_lr_score([0.0], OUT[:1])[0] == pytest.approx(0.5 * math.log(2 * math.pi))
    assert offline_lr_score([2.0], OUT[:1])[0] == offline_lr_score([-2.0], OUT[:1])[0]  # two-sided
    one = offline_lr_score([[-1.0], [0.0], [1.0], [40.0]], np.tile(OUT[:1], (4, 1)), one_sided=True)
    assert np.all(np.diff(one) > 0) and np.all(np.isfinite(one))  # resolves the far tail
    assert one[1] == pytest.approx(-math.log(0.5))
    np.testing.assert_allclose(global_threshold_score([[1.0, 3.0], [0.0, 0.0]]), [2.0, 0.0])


# --- ROC summary ----------------------------------------------------------------------------------------------------


def test_roc_summary_small() -> None:
    r = roc_summary([1.0, 2.0, 3.0], [0.0, 1.5])
    assert r["auc"] == pytest.approx(5 / 6)
    assert r["balanced_acc"] == pytest.approx(1 - (0 + 1 / 3) / 2)
    assert r["tpr_at_1pct_fpr"] == pytest.approx(2 / 3) and r["tpr_at_0.1pct_fpr"] == pytest.approx(2 / 3)


def test_roc_summary_fpr_budget_is_inclusive() -> None:
    neg = np.arange(100.0)  # 100 non-members: FPR steps of 1%
    pos = np.array([98.5, 97.5, 50.0])
    r = roc_summary(pos, neg, fprs=(0.01, 0.02, 0.001))
    assert r["tpr_at_1pct_fpr"] == pytest.approx(1 / 3)  # threshold 98.5: FPR = 1/100 ≤ 1%
    assert r["tpr_at_2pct_fpr"] == pytest.approx(2 / 3)
    assert r["tpr_at_0.1pct_fpr"] == pytest.approx(0.0)  # only FPR = 0 fits


def test_roc_summary_perfect_and_empty() -> None:
    r = roc_summary([5.0, 6.0], [0.0, 1.0])
    assert (r["auc"], r["balanced_acc"], r["tpr_at_1pct_fpr"]) == (1.0, 1.0, 1.0)
    with pytest.warns(DegenerateInputWarning):
        e = roc_summary([], [0.0])
    assert e["auc"] is None and e["reason"] == "no member scores"


# --- U-LiRA ---------------------------------------------------------------------------------------------------------


def _ulira_population(rng: np.random.Generator, n: int, k: int, leak: float) -> tuple[np.ndarray, ...]:
    """n forget + n held-out examples, k shadows; each shadow: OUT w.p. 1/2, trained-then-unlearned w.p. 1/4, kept
    (NaN in both arrays) w.p. 1/4. φ ~ N(μ_x + leak·[unlearned], 1)."""
    mu = rng.normal(0, 2, (2 * n, 1))
    status = rng.choice(3, size=(2 * n, k), p=[0.5, 0.25, 0.25])
    phi = mu + rng.normal(0, 1, (2 * n, k))
    s_u = np.where(status == 1, phi + leak, np.nan)
    s_o = np.where(status == 0, phi, np.nan)
    t_f = mu[:n, 0] + leak + rng.normal(0, 1, n)
    t_h = mu[n:, 0] + rng.normal(0, 1, n)
    return t_f, t_h, s_u, s_o


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_ulira_null_balanced_accuracy_near_half(seed: int) -> None:
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateInputWarning)  # rare rows without unlearned shadows are dropped
        res = ulira(*_ulira_population(rng, 1000, 64, leak=0.0))
    assert res["n_shadows"] == 64 and res["variance"] == "per_example"
    assert abs(res["balanced_acc"] - 0.5) <= 0.05
    assert abs(res["auc"] - 0.5) <= 0.05


def test_ulira_detects_leak_and_global_variance_below_64() -> None:
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateInputWarning)
        res = ulira(*_ulira_population(rng, 300, 16, leak=3.0))
    assert res["variance"] == "global" and res["n_shadows"] == 16
    assert res["auc"] > 0.9 and res["balanced_acc"] > 0.8
    assert res["scores"].shape == res["is_forget"].shape == (600 - res["n_dropped"],)
    assert np.all(np.isfinite(res["scores"]))


def test_ulira_drops_unscorable_rows_and_checks_shapes() -> None:
    t_f, t_h = np.array([1.0, 2.0]), np.array([0.0])
    s_u = np.array([[1.0, np.nan], [np.nan, np.nan], [0.5, np.nan]])
    s_o = np.array([[np.nan, 0.0], [0.0, 1.0], [np.nan, 0.2]])
    with pytest.warns(DegenerateInputWarning):
        res = ulira(t_f, t_h, s_u, s_o, variance="global")
    assert res["n_dropped"] == 1 and res["evaluated"].tolist() == [True, False, True]
    assert res["is_forget"].tolist() == [True, False]
    with pytest.raises(ValueError):
        ulira(t_f, t_h, s_u[:2], s_o[:2])
    with pytest.raises(ValueError):
        ulira(t_f, t_h, s_u, s_o, variance="pooled")  # type: ignore[arg-type]
