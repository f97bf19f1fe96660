"""Confidence intervals for metric values aggregated over seeds / runs.

References:
    - Student-t interval: mean ± t_{(1+c)/2, n−1} · s/√n (``scipy.stats.t``, ``scipy.stats.sem``).
    - Bootstrap: Efron & Tibshirani, "An Introduction to the Bootstrap", 1993; BCa interval via
      ``scipy.stats.bootstrap``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from expunge.errors import DegenerateInputWarning

BOOTSTRAP_RESAMPLES = 9999


def mean_ci(values: ArrayLike, confidence: float = 0.95, method: Literal["t", "bootstrap"] = "t",
            seed: int = 0) -> dict[str, Any]:
    """Mean and two-sided confidence interval.

    ``"t"``: x̄ ± t_{(1+c)/2, n−1} · s/√n with s the sample std (ddof = 1). ``"bootstrap"``: BCa interval of the mean
    from ``scipy.stats.bootstrap`` (9999 resamples, ``rng=seed``); if BCa is undefined the percentile interval is
    used and ``method`` says so.

    Args:
        values: 1-D finite values (one per seed/run).
        confidence: Confidence level in (0, 1).
        method: ``"t"`` or ``"bootstrap"``.
        seed: Seed of the bootstrap resampling (recorded in the result).

    Returns:
        ``{"mean", "low", "high", "n", "method", "seed", "reason"}``. Degenerate inputs warn
        (DegenerateInputWarning): n = 0 ⇒ mean/low/high None; n = 1 or zero variance ⇒ low = high = mean.

    Raises:
        ValueError: Non-finite values, a bad confidence level or an unknown method.
    """
    if method not in ("t", "bootstrap"):
        raise ValueError(f"method must be 't' or 'bootstrap', got {method!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite")
    out: dict[str, Any] = {"mean": None, "low": None, "high": None, "n": int(x.size), "method": method,
                           "seed": seed if method == "bootstrap" else None, "reason": None}
    reason = "no values" if x.size == 0 else "n = 1" if x.size == 1 else "zero variance" if np.all(x == x[0]) else None
    if reason is not None:
        warnings.warn(f"mean_ci: {reason}; interval collapsed to the mean", DegenerateInputWarning, stacklevel=2)
        mean = None if x.size == 0 else float(x[0])
        out.update(mean=mean, low=mean, high=mean, reason=reason)
        return out
    mean = float(x.mean())
    if method == "t":
        low, high = stats.t.interval(confidence, df=x.size - 1, loc=mean, scale=stats.sem(x))
    else:
        low, high = _bootstrap(x, confidence, seed, out)
    out.update(mean=mean, low=float(low), high=float(high))
    return out


def _bootstrap(x: np.ndarray, confidence: float, seed: int, out: dict[str, Any]) -> tuple[float, float]:
    """BCa bootstrap interval of the mean; falls back to the percentile interval when BCa is undefined."""
    for kind in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            res = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=BOOTSTRAP_RESAMPLES,
                                  method=kind, rng=np.random.default_rng(seed))
        low, high = res.confidence_interval
        if np.isfinite(low) and np.isfinite(high):
            if kind != "BCa":
                out["method"] = "bootstrap-percentile"
                warnings.warn("mean_ci: BCa interval undefined; percentile interval used", DegenerateInputWarning,
                              stacklevel=3)
            return float(low), float(high)
    mean = float(x.mean())
    warnings.warn("mean_ci: bootstrap interval undefined; collapsed to the mean", DegenerateInputWarning, stacklevel=3)
    out["reason"] = "bootstrap interval undefined"
    return mean, mean


def proportion_se(p: float, n: int) -> float | None:
    """Binomial standard error sqrt(p(1 − p)/n) of a proportion measured on n examples (None when n = 0)."""
    return None if n <= 0 else math.sqrt(max(p * (1.0 - p), 0.0) / n)


def auc_se(auc: float, n_pos: int, n_neg: int) -> float | None:
    """Hanley & McNeil (1982) standard error of a ROC AUC from n_pos positives and n_neg negatives.

    se² = [A(1−A) + (n_pos−1)(Q1 − A²) + (n_neg−1)(Q2 − A²)] / (n_pos·n_neg), Q1 = A/(2−A), Q2 = 2A²/(1+A).
    """
    if n_pos <= 0 or n_neg <= 0:
        return None
    q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def separable(a: float, se_a: float | None, b: float, se_b: float | None, z: float = 2.0) -> bool | None:
    """True when |a − b| exceeds z combined standard errors; None when either error is unknown or any input is not
    finite (a NaN compares False with everything, which read as "not separable": "no power")."""
    if se_a is None or se_b is None or not all(math.isfinite(v) for v in (a, b, se_a, se_b)):
        return None
    return abs(a - b) > z * math.sqrt(se_a**2 + se_b**2)
