"""expunge.metrics.functional.representation: linear CKA known answers and invariances, probes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ortho_group

from expunge.errors import DegenerateInputWarning
from expunge.metrics.functional.representation import label_probe, linear_cka, membership_probe


def test_cka_known_answers():
    assert linear_cka([[1.0], [2.0], [3.0]], [[1.0], [3.0], [2.0]]) == pytest.approx(0.25)  # corr^2
    assert linear_cka([[1.0], [2.0], [3.0]], [[1.0], [0.0], [1.0]]) == pytest.approx(0.0, abs=1e-12)
    x = np.random.default_rng(0).standard_normal((50, 6))
    assert linear_cka(x, x) == pytest.approx(1.0)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000), n=st.integers(4, 40), scale=st.floats(0.1, 10.0))
def test_cka_invariances_primal_and_dual_forms(seed, n, scale):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8))  # n < 8 uses the Gram form, n >= 8 the feature form
    q = ortho_group.rvs(8, random_state=seed)
    assert linear_cka(x, scale * x @ q + 3.0) == pytest.approx(1.0, abs=1e-9)
    y = rng.standard_normal((n, 3))
    assert 0.0 <= linear_cka(x, y) <= 1.0
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x))


def test_cka_degenerate():
    with pytest.warns(DegenerateInputWarning):
        assert linear_cka([[1.0]], [[2.0]]) is None
    with pytest.warns(DegenerateInputWarning):
        assert linear_cka(np.ones((5, 2)), np.random.default_rng(0).standard_normal((5, 2))) is None


def test_membership_probe_separable_and_iid():
    rng = np.random.default_rng(1)
    sep = membership_probe(rng.standard_normal((40, 3)) + 10, rng.standard_normal((60, 3)), seed=0)
    assert sep["auc"] == 1.0 and sep["n_per_side"] == 40
    iid = membership_probe(rng.standard_normal((200, 3)), rng.standard_normal((200, 3)), seed=0)
    assert abs(iid["auc"] - 0.5) < 0.1
    with pytest.warns(DegenerateInputWarning):
        assert membership_probe(np.zeros((5, 2)), np.zeros((50, 2)))["auc"] is None
    with pytest.warns(DegenerateInputWarning):
        assert membership_probe(np.zeros((30, 2)), np.zeros((30, 2)))["auc"] == 0.5


def test_label_probe():
    y = np.arange(60) % 3
    feats = np.eye(3)[y] + 0.01 * np.random.default_rng(0).standard_normal((60, 3))
    assert label_probe(feats[:40], y[:40], feats[40:], y[40:])["acc"] == 1.0
    with pytest.warns(DegenerateInputWarning):
        assert label_probe(feats[:5], [1] * 5, feats[5:9], [1, 1, 0, 2])["acc"] == 0.5
    with pytest.warns(DegenerateInputWarning):
        assert label_probe(feats[:0], [], feats, y)["acc"] is None
