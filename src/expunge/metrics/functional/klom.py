"""KLoM — KL divergence of margins between unlearned models and oracles (Georgiev et al., arXiv 2410.23232).

Per example, the margins m = z_y − logsumexp_{j≠y} z_j (= φ, see :func:`expunge.metrics.functional.lira.
logit_scaled_confidence`) under N unlearned models and under N oracles retrained without the forget set are clipped
to [−100, 100] and histogrammed on 20 bins spanning their combined range; KLoM = KL(P_U ‖ P_R) of the two
histograms (natural log), with P_R floored at 1e-5. Lower is better; report percentiles over a split.

References:
    - Georgiev et al., "Attribute-to-Delete: Machine Unlearning via Datamodel Matching", arXiv 2410.23232, App. E.1.
    - easydub/EasyDUB-code ``easydub/eval.py`` (``binned_kl_divergence``, ``klom_from_margins``), which matches
      RoyRin/data-unlearning-bench.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from expunge.errors import DegenerateInputWarning

F64 = NDArray[np.float64]
_CHUNK = 1 << 22  # elements of the (examples × models × bins) comparison per chunk


def _as_margins(a: ArrayLike, name: str) -> F64:
    m = np.asarray(a, dtype=np.float64)
    m = m[None, :] if m.ndim == 1 else m
    if m.ndim != 2:
        raise ValueError(f"{name} must be (n_examples, n_models) or (n_models,), got shape {np.shape(a)}")
    if np.any(np.isnan(m)):
        raise ValueError(f"{name} must not contain NaN")
    return m


def _bin_probs(x: F64, edges: F64) -> F64:
    """Per-row histogram probabilities on per-row edges, ``np.histogram`` semantics: bins [e_b, e_{b+1}) and the
    last bin closed, so a value equal to the top edge counts in the last bin."""
    bins = edges.shape[1] - 1
    idx = np.clip(np.sum(x[:, :, None] >= edges[:, None, :], axis=2) - 1, 0, bins - 1)
    counts = np.sum(idx[:, :, None] == np.arange(bins), axis=1)
    return counts / x.shape[1]


def klom(unlearned_margins: ArrayLike, oracle_margins: ArrayLike, *, bins: int = 20, clip: float = 100.0,
         floor: float = 1e-5) -> F64:
    """Per-example KLoM = Σ_{b: P_U(b) > 0} P_U(b) · log(P_U(b) / max(P_R(b), floor)).

    Both margin sets are clipped to [−clip, clip]; the ``bins`` equal-width bins span [min, max] of the combined
    clipped values of that example (widened to [v, v + 1] when all values equal v, as in the reference).

    Unlike the reference, a value equal to the combined maximum is counted in the last bin (``np.histogram``
    semantics). eval.py bins with ``np.digitize(x, edges)`` and keeps indices 1..bins, so every sample equal to the
    maximum gets index bins + 1 and is silently dropped (for U = [0, 0, 0, 0], R = [0, 0, 10, 10] it drops the
    oracle's two 10s and returns 0 instead of ln 2).

    Args:
        unlearned_margins: (n_examples, N_U) margins under unlearned models; 1-D = one example.
        oracle_margins: (n_examples, N_R) margins under oracles; N_R may differ from N_U.
        bins: Number of shared bins (20).
        clip: Margins are clipped to [−clip, clip] (100).
        floor: Floor on oracle bin probabilities (1e-5).

    Returns:
        (n_examples,) KLoM values ≥ 0 (natural log). Known answer: U [0, 0, 0, 0], R [0, 0, 10, 10] → ln 2.

    Raises:
        ValueError: NaN, shape mismatch, no model, or bad parameters.
    """
    u = np.clip(_as_margins(unlearned_margins, "unlearned_margins"), -clip, clip)
    r = np.clip(_as_margins(oracle_margins, "oracle_margins"), -clip, clip)
    if u.shape[0] != r.shape[0]:
        raise ValueError(f"need the same number of examples, got {u.shape[0]} and {r.shape[0]}")
    if u.shape[1] == 0 or r.shape[1] == 0:
        raise ValueError("need at least one unlearned model and one oracle")
    if bins < 1 or not clip > 0 or not floor > 0:
        raise ValueError("need bins >= 1, clip > 0, floor > 0")
    lo = np.minimum(u.min(axis=1), r.min(axis=1))
    hi = np.maximum(u.max(axis=1), r.max(axis=1))
    hi = np.where(lo >= hi, lo + 1.0, hi)
    edges = np.linspace(lo, hi, bins + 1, axis=1)
    out = np.empty(u.shape[0])
    step = max(1, _CHUNK // ((u.shape[1] + r.shape[1]) * (bins + 1)))
    for s in range(0, u.shape[0], step):
        sl = slice(s, s + step)
        p, q = _bin_probs(u[sl], edges[sl]), _bin_probs(r[sl], edges[sl])
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, p * np.log(p / np.maximum(q, floor)), 0.0)
        out[sl] = terms.sum(axis=1)
    return out


def klom_summary(values: ArrayLike) -> dict[str, Any]:
    """Percentiles of per-example KLoM over a split: dict(p50, p95, p99, mean, n) (linear interpolation).

    Values are None with "reason" (and a :class:`DegenerateInputWarning`) for an empty split.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(v)):
        raise ValueError("KLoM values must be finite")
    if v.size == 0:
        warnings.warn("klom_summary: no example", DegenerateInputWarning, stacklevel=2)
        return {"p50": None, "p95": None, "p99": None, "mean": None, "n": 0, "reason": "no example"}
    p50, p95, p99 = np.percentile(v, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(v.mean()), "n": int(v.size)}
