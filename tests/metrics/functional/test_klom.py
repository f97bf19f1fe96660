"""KLoM (spec/metrics.md 4.4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expunge.errors import DegenerateInputWarning
from expunge.metrics.functional.klom import klom, klom_summary


def test_known_answer_counts_the_maximum() -> None:
    """Bins over [0, 10]; P_U = δ(bin 0), P_R = ½ bin 0 + ½ bin 19 ⇒ ln 2 (the reference drops the 10s and gets 0)."""
    assert klom([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 10.0, 10.0]) == pytest.approx([math.log(2)])


def test_matches_np_histogram_plugin_kl() -> None:
    rng = np.random.default_rng(0)
    u = rng.normal(0, 3, (40, 30))
    r = rng.normal(0.5, 3, (40, 25)) * rng.uniform(0.5, 2, (40, 1))
    expected = []
    for a, b in zip(u, r, strict=True):
        edges = np.linspace(min(a.min(), b.min()), max(a.max(), b.max()), 21)
        p = np.histogram(a, edges)[0] / a.size
        q = np.histogram(b, edges)[0] / b.size
        m = p > 0
        expected.append(np.sum(p[m] * np.log(p[m] / np.maximum(q[m], 1e-5))))
    np.testing.assert_allclose(klom(u, r), expected, atol=1e-12)


def test_floor_clip_and_constant_values() -> None:
    # disjoint supports: Σ P_U log(P_U / 1e-5) = ln 1e5
    assert klom([[0.0, 0.0]], [[5.0, 5.0]]) == pytest.approx([math.log(1e5)])
    # identical constant margins: range widened to [v, v + 1], KL 0
    assert klom([[3.0, 3.0]], [[3.0, 3.0]]).tolist() == [0.0]
    # clipping to ±100 makes 1e6 and 200 identical
    assert klom([[1e6, 1e6]], [[200.0, 200.0]]).tolist() == [0.0]


def test_bad_inputs() -> None:
    with pytest.raises(ValueError):
        klom(np.zeros((2, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError):
        klom([np.nan], [0.0])
    with pytest.raises(ValueError):
        klom(np.zeros((2, 0)), np.zeros((2, 3)))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), shift=st.floats(-50, 50))
def test_non_negative_and_zero_for_identical(seed: int, n: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    u = rng.normal(0, 5, (3, n))
    r = rng.normal(shift, 5, (3, n))
    assert np.all(klom(u, r) >= -1e-12)
    np.testing.assert_allclose(klom(u, u.copy()), 0.0, atol=1e-12)


def test_summary() -> None:
    s = klom_summary(np.arange(101.0))
    assert (s["p50"], s["p95"], s["p99"], s["n"]) == (50.0, 95.0, 99.0, 101)
    with pytest.warns(DegenerateInputWarning):
        e = klom_summary([])
    assert e["p95"] is None and e["reason"] == "no example"


@pytest.mark.parametrize("n", [8, 16])
def test_the_verdicts_klom_tolerance_separates_a_one_sd_shift(n):
    """The one-sided KLoM criterion's 0.5 nats (expunge.tasks.classification): with n margins per side, 20 bins and
    the 1e-5 floor, shifting every example's margins by one standard deviation raises the p95 by more than the
    tolerance over same-distribution samples (the Retrain-vs-Retrain floor), and by less than 2.5× it."""
    from expunge.tasks import get_task

    tol = get_task("classification").per_example_criteria["klom_p95_forget"]
    rng = np.random.default_rng(0)
    u, r = rng.normal(size=(2000, n)), rng.normal(size=(2000, n))
    same = klom_summary(klom(u, r))["p95"]
    shifted = klom_summary(klom(u + 1.0, r))["p95"]
    assert tol < shifted - same < 2.5 * tol


def test_at_four_models_the_p95_saturates_so_the_criterion_has_no_power():
    """Same-distribution samples of 4 share no bin on over 5% of the examples: their p95 is the value of margins in
    disjoint bins (here 0.5·ln(0.5/1e-5) + 0.5·ln(0.25/1e-5)), and a one-SD shift cannot raise it."""
    rng = np.random.default_rng(0)
    u, r = rng.normal(size=(2000, 4)), rng.normal(size=(2000, 4))
    ceiling = 0.5 * math.log(0.5 / 1e-5) + 0.5 * math.log(0.25 / 1e-5)
    assert klom_summary(klom(u, r))["p95"] == pytest.approx(ceiling)
    assert klom_summary(klom(u + 1.0, r))["p95"] == pytest.approx(ceiling)
