"""Output-divergence metrics on probability arrays.

Pure NumPy; rows are examples, columns classes. Logs are natural unless ``base`` says otherwise; probabilities are
floored at 1e-12 before every log (the project's rule for every metric: a zero probability never gives ±inf).

References:
    - Jensen–Shannon divergence: Lin, "Divergence measures based on the Shannon entropy", IEEE Trans. Inf. Theory 1991.
    - ZRF: Chundawat et al., "Can Bad Teaching Induce Forgetting? Unlearning in Deep Networks using an Incompetent
      Teacher", AAAI 2023 (arXiv 2205.08096); reference code vikram2000b/bad-teaching-unlearning ``metrics.py``
      (``JSDiv``, ``UnLearningScore``, ``actv_dist``), copied into SSD ``src/metrics.py``. That ``JSDiv`` is not a JS
      divergence (see :func:`zrf_legacy_badteacher`); :func:`zrf` computes the true JS divergence in bits.
    - Activation distance: Bad Teacher / SSD ``actv_dist`` (L2); SCRUB notebooks (L1).
    - Top-1 agreement ("completeness"): SUPREME.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from expunge.errors import DegenerateInputWarning, NonFiniteOutputs
from expunge.metrics.functional.accuracy import accuracy

EPS = 1e-12
_SUM_TOL = 1e-4


def log_softmax(logits: ArrayLike, axis: int = -1) -> NDArray[np.float64]:
    """Numerically stable log-softmax in float64.

    log p_i = z_i − max(z) − log Σ_j exp(z_j − max(z)).

    Args:
        logits: Array of logits; classes along ``axis``.
        axis: Class axis.

    Returns:
        Log-probabilities, same shape, float64.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.size == 0:
        return z.copy()
    shifted = z - np.max(z, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softmax(logits: ArrayLike, axis: int = -1) -> NDArray[np.float64]:
    """Numerically stable softmax in float64: p_i = exp(z_i − max z) / Σ_j exp(z_j − max z).

    Args:
        logits: Array of logits; classes along ``axis``.
        axis: Class axis.

    Returns:
        Probabilities, same shape, float64; rows sum to 1.
    """
    return np.exp(log_softmax(logits, axis=axis))


def as_prob_pair(p: ArrayLike, q: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Validate two probability arrays of equal shape (1-D is one row) and return them as 2-D float64.

    Raises:
        ValueError: Shapes differ, arrays are not 1-D/2-D, values are negative/non-finite, or a row does not sum to 1
            (within 1e-4) — the usual sign that logits were passed instead of probabilities.
    """
    out = []
    for name, a in (("p", p), ("q", q)):
        arr = np.asarray(a, dtype=np.float64)
        arr = arr.reshape(1, -1) if arr.ndim == 1 else arr
        if arr.ndim != 2:
            raise ValueError(f"{name} must be 1-D or 2-D (examples × classes), got shape {arr.shape}")
        if arr.size and (not np.all(np.isfinite(arr)) or np.any(arr < 0)):
            raise ValueError(f"{name} must hold finite non-negative probabilities")
        if arr.size and np.any(np.abs(arr.sum(axis=1) - 1.0) > _SUM_TOL):
            raise ValueError(f"rows of {name} must sum to 1 (pass probabilities, e.g. softmax(logits), not logits)")
        out.append(arr)
    if out[0].shape != out[1].shape:
        raise ValueError(f"p and q must have the same shape, got {out[0].shape} and {out[1].shape}")
    return out[0], out[1]


def _kl_rows(p: NDArray[np.float64], q: NDArray[np.float64]) -> NDArray[np.float64]:
    """Σ_c p_c (log p_c − log q_c) per row, natural log, logs floored at 1e-12; 0·log 0 = 0."""
    if p.shape[0] == 0:
        return np.zeros(0)
    return np.sum(p * (np.log(np.maximum(p, EPS)) - np.log(np.maximum(q, EPS))), axis=1)


def kl_divergence(p: ArrayLike, q: ArrayLike, base: float = np.e) -> NDArray[np.float64]:
    """Kullback–Leibler divergence per row: KL(p‖q) = Σ_c p_c log(p_c / q_c), floored at 1e-12 inside logs.

    Args:
        p: Probabilities, shape (n, C) or (C,).
        q: Probabilities, same shape.
        base: Logarithm base (e: nats, 2: bits).

    Returns:
        Array of shape (n,), ≥ 0.
    """
    p2, q2 = as_prob_pair(p, q)
    return np.maximum(_kl_rows(p2, q2), 0.0) / np.log(base)


def symmetric_kl(p: ArrayLike, q: ArrayLike, base: float = np.e) -> NDArray[np.float64]:
    """Jeffreys divergence per row: KL(p‖q) + KL(q‖p).

    Args:
        p: Probabilities, shape (n, C) or (C,).
        q: Probabilities, same shape.
        base: Logarithm base.

    Returns:
        Array of shape (n,), ≥ 0.
    """
    return kl_divergence(p, q, base) + kl_divergence(q, p, base)


def js_divergence(p: ArrayLike, q: ArrayLike, base: float = 2) -> NDArray[np.float64]:
    """Jensen–Shannon divergence per row (Lin, IEEE Trans. Inf. Theory 1991).

    JS(p‖q) = ½ KL(p‖m) + ½ KL(q‖m), m = (p + q)/2. In bits (``base=2``) JS ∈ [0, 1]; equals
    ``scipy.spatial.distance.jensenshannon(p, q, axis=1, base=base) ** 2``.

    Args:
        p: Probabilities, shape (n, C) or (C,).
        q: Probabilities, same shape.
        base: Logarithm base (2: bits, the default; e: nats).

    Returns:
        Array of shape (n,), clipped to [0, log_base 2].
    """
    p2, q2 = as_prob_pair(p, q)
    m = (p2 + q2) / 2.0
    js = 0.5 * _kl_rows(p2, m) + 0.5 * _kl_rows(q2, m)
    return np.clip(js, 0.0, np.log(2.0)) / np.log(base)


def _empty_warn(n: int, what: str) -> bool:
    if n == 0:
        warnings.warn(f"{what}: empty input", DegenerateInputWarning, stacklevel=3)
        return True
    return False


def activation_distance(p: ArrayLike, q: ArrayLike, ord: Literal[1, 2] = 2) -> float | None:
    """Mean per-example distance between output distributions (Chundawat et al., AAAI 2023, arXiv 2205.08096;
    vikram2000b/bad-teaching-unlearning ``metrics.py:actv_dist``; meghdadk/SCRUB notebooks for L1).

    L2: mean_x ‖p(x) − q(x)‖₂ (Bad Teacher / SSD ``actv_dist``); L1: mean_x ‖p(x) − q(x)‖₁ (SCRUB notebooks). The
    reference ``actv_dist`` uses ``np``/``nn`` without importing them; ours runs.

    Args:
        p: Probabilities of the evaluated model, shape (n, C).
        q: Probabilities of the reference model, same shape.
        ord: 1 or 2.

    Returns:
        The mean distance, or None (with a DegenerateInputWarning) when n = 0.
    """
    if ord not in (1, 2):
        raise ValueError(f"ord must be 1 or 2, got {ord!r}")
    p2, q2 = as_prob_pair(p, q)
    if _empty_warn(p2.shape[0], "activation_distance"):
        return None
    return float(np.mean(np.linalg.norm(p2 - q2, ord=ord, axis=1)))


def top1_agreement(p: ArrayLike, q: ArrayLike) -> float | None:
    """Fraction of examples whose argmax agrees: (1/n) Σ_x 1[argmax p(x) = argmax q(x)] (SUPREME's "completeness").

    Accepts probabilities or logits (argmax is the same).

    Returns:
        Agreement in [0, 1], or None (with a DegenerateInputWarning) when n = 0.

    Raises:
        NonFiniteOutputs: A value of ``p`` or ``q`` is NaN/±inf (two collapsed models "agree" on class 0 otherwise).
    """
    a, b = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    a, b = (x.reshape(1, -1) if x.ndim == 1 else x for x in (a, b))
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"p and q must be 2-D arrays of the same shape, got {a.shape} and {b.shape}")
    for name, x in (("p", a), ("q", b)):
        if not np.all(np.isfinite(x)):
            raise NonFiniteOutputs(f"top1_agreement: {name} holds NaN/±inf values: a collapsed model has no top-1")
    if _empty_warn(a.shape[0], "top1_agreement"):
        return None
    return accuracy(a, np.argmax(b, axis=1))  # a's accuracy against b's predictions


def zrf(p_unlearned: ArrayLike, p_random: ArrayLike) -> float | None:
    """Zero Retrain Forgetting score (Chundawat et al., AAAI 2023, arXiv 2205.08096).

    ZRF = 1 − (1/|F|) Σ_{x∈F} JS(p_U(x) ‖ p_rand(x)), JS in bits, so ZRF ∈ [0, 1]. ``p_rand`` comes from a randomly
    initialised model of the same architecture. Unlike bad-teaching-unlearning ``metrics.py:JSDiv`` this is the true
    JS divergence (see :func:`zrf_legacy_badteacher` for the reference's number).

    Args:
        p_unlearned: Probabilities of the evaluated model on F, shape (n, C).
        p_random: Probabilities of the random model on F, same shape.

    Returns:
        ZRF, or None (with a DegenerateInputWarning) when F is empty.
    """
    js = js_divergence(p_unlearned, p_random, base=2)
    if _empty_warn(js.shape[0], "zrf"):
        return None
    return float(np.clip(1.0 - js.mean(), 0.0, 1.0))


def zrf_legacy_badteacher(p: ArrayLike, q: ArrayLike) -> float | None:
    """Legacy ZRF exactly as bad-teaching-unlearning ``metrics.py`` computes it — for reproducing old tables only.

    The reference ``JSDiv(p, q)`` is ``0.5*F.kl_div(log p, m) + 0.5*F.kl_div(log q, m)``, m = (p + q)/2. PyTorch's
    ``kl_div(input, target)`` is target·(log target − input) with ``reduction='mean'`` over all N·C elements, so the
    term is

        J = 1/(2·N·C) Σ_{n,c} [m log(m/p) + m log(m/q)]

    i.e. KL(m‖p)-direction (not JS), divided by the number of classes as well as examples. The score is 1 − J, in nats.
    Known answer: p = (0.5, 0.5), q = (0.7, 0.3) ⇒ J = 0.010679 whereas the true JS is 0.021006 nats. Our
    :func:`zrf` does it right. Only deviation: zero probabilities are floored at 1e-12 in the logs (the reference would
    return inf/nan).

    Args:
        p: Probabilities of the evaluated model, shape (n, C).
        q: Probabilities of the other model (random init / gold model), same shape.

    Returns:
        1 − J, or None (with a DegenerateInputWarning) when n = 0.
    """
    p2, q2 = as_prob_pair(p, q)
    if _empty_warn(p2.size, "zrf_legacy_badteacher"):
        return None
    m = (p2 + q2) / 2.0
    log_m = np.log(np.maximum(m, EPS))
    term = 0.5 * np.mean(m * (log_m - np.log(np.maximum(p2, EPS)))) \
        + 0.5 * np.mean(m * (log_m - np.log(np.maximum(q2, EPS))))
    return float(1.0 - term)
