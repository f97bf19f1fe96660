"""Known answers (spec/metrics.md section 2) and properties of expunge.metrics.functional.divergence."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy as scipy_entropy

from expunge.errors import DegenerateInputWarning
from expunge.metrics.functional.divergence import (
    activation_distance,
    js_divergence,
    kl_divergence,
    log_softmax,
    softmax,
    symmetric_kl,
    top1_agreement,
    zrf,
    zrf_legacy_badteacher,
)

P_HALF, Q_ONEHOT = np.array([[0.5, 0.5]]), np.array([[1.0, 0.0]])


def test_softmax_is_stable_float64() -> None:
    p = softmax(np.array([[1000.0, 0.0], [-1000.0, -1000.0]], dtype=np.float32))
    assert p.dtype == np.float64 and np.all(np.isfinite(p))
    np.testing.assert_allclose(p, [[1.0, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(log_softmax(np.array([[0.0, 0.0]])), np.log([[0.5, 0.5]]))


def test_js_known_answers() -> None:
    assert js_divergence(P_HALF, Q_ONEHOT)[0] == pytest.approx(0.311278, abs=1e-6)
    assert js_divergence(P_HALF, Q_ONEHOT, base=np.e)[0] == pytest.approx(0.215762, abs=1e-6)
    assert js_divergence(P_HALF, P_HALF)[0] == pytest.approx(0.0, abs=1e-12)
    assert js_divergence([1.0, 0.0], [0.0, 1.0])[0] == pytest.approx(1.0)


def test_js_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(5), size=50), rng.dirichlet(np.full(5, 0.3), size=50)
    np.testing.assert_allclose(js_divergence(p, q), jensenshannon(p, q, axis=1, base=2) ** 2, atol=1e-9)


def _normalise(w: np.ndarray) -> np.ndarray:
    w = w.copy()
    w[w.sum(axis=1) == 0] = 1.0
    return w / w.sum(axis=1, keepdims=True)


prob_pairs = st.integers(2, 6).flatmap(lambda c: st.tuples(
    arrays(np.float64, (3, c), elements=st.floats(0.0, 1.0)),
    arrays(np.float64, (3, c), elements=st.floats(0.0, 1.0)),
)).map(lambda t: (_normalise(t[0]), _normalise(t[1])))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(prob_pairs)
def test_js_symmetric_and_bounded(pq: tuple[np.ndarray, np.ndarray]) -> None:
    p, q = pq
    a, b = js_divergence(p, q), js_divergence(q, p)
    np.testing.assert_allclose(a, b, atol=1e-12)
    assert np.all((a >= 0.0) & (a <= 1.0))
    np.testing.assert_allclose(js_divergence(p, p), 0.0, atol=1e-12)


def test_kl_and_symmetric_kl() -> None:
    p, q = np.array([0.5, 0.5]), np.array([0.7, 0.3])
    assert kl_divergence(p, q)[0] == pytest.approx(scipy_entropy(p, q))
    assert kl_divergence(p, q, base=2)[0] == pytest.approx(scipy_entropy(p, q, base=2))
    assert symmetric_kl(p, q)[0] == pytest.approx(scipy_entropy(p, q) + scipy_entropy(q, p))
    assert np.isfinite(kl_divergence([1.0, 0.0], [0.0, 1.0])[0])


def test_activation_distance_known_answers() -> None:
    assert activation_distance([[1.0, 0.0]], [[0.0, 1.0]], ord=2) == pytest.approx(np.sqrt(2))
    assert activation_distance([[1.0, 0.0]], [[0.0, 1.0]], ord=1) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        activation_distance(P_HALF, P_HALF, ord=3)  # type: ignore[arg-type]


def test_top1_agreement_known_answer() -> None:
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    q = np.array([[0.7, 0.3], [0.4, 0.6], [0.1, 0.9]])
    assert top1_agreement(p, q) == pytest.approx(2 / 3, abs=1e-4)


def test_zrf_known_answers() -> None:
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(4), size=10)
    assert zrf(p, p) == pytest.approx(1.0)
    assert zrf([[1.0, 0.0]], [[0.0, 1.0]]) == pytest.approx(0.0)


def test_zrf_legacy_known_answer() -> None:
    p, q = np.array([[0.5, 0.5]]), np.array([[0.7, 0.3]])
    assert 1.0 - zrf_legacy_badteacher(p, q) == pytest.approx(0.010679, abs=1e-6)
    assert js_divergence(p, q, base=np.e)[0] == pytest.approx(0.021006, abs=1e-6)


def test_zrf_legacy_matches_torch_reference_formula() -> None:
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    rng = np.random.default_rng(2)
    p, q = rng.dirichlet(np.ones(7), size=20), rng.dirichlet(np.ones(7), size=20)
    tp, tq = torch.from_numpy(p), torch.from_numpy(q)
    m = (tp + tq) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = 1 - (0.5 * functional.kl_div(torch.log(tp), m) + 0.5 * functional.kl_div(torch.log(tq), m))
    assert zrf_legacy_badteacher(p, q) == pytest.approx(float(ref), abs=1e-12)


def test_divergence_input_validation() -> None:
    with pytest.raises(ValueError):
        js_divergence(P_HALF, np.array([[0.2, 0.3, 0.5]]))
    with pytest.raises(ValueError, match="sum to 1"):
        js_divergence(np.array([[2.0, 1.0]]), P_HALF)
    with pytest.raises(ValueError):
        js_divergence(np.array([[-0.5, 1.5]]), P_HALF)


def test_empty_inputs() -> None:
    empty = np.zeros((0, 3))
    assert js_divergence(empty, empty).shape == (0,)
    for fn in (zrf, zrf_legacy_badteacher, activation_distance, top1_agreement):
        with pytest.warns(DegenerateInputWarning):
            assert fn(empty, empty) is None
