"""Summaries of per-example margins φ = z_y − logsumexp_{j≠y} z_j (LiRA's logit-scaled confidence, Carlini et al. 2022).

φ itself is :func:`expunge.metrics.functional.lira.logit_scaled_confidence`; this module summarises its distribution
over a split. Quantiles use NumPy's default (linear interpolation, ``method="linear"``).

Reference for the median's standard error: the distribution-free order-statistic interval (e.g. Conover, "Practical
Nonparametric Statistics", 3rd ed., 1999, §3.2): the rank of the sample median has binomial sd √n/2, so one standard
error spans the quantiles 0.5 ± 0.5/√n.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from expunge.errors import DegenerateInputWarning

QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)


def _finite_1d(x: ArrayLike) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(a)):
        raise ValueError("margins must be finite")
    return a


def margin_summary(phi: ArrayLike, quantiles: Sequence[float] = QUANTILES) -> dict[str, Any]:
    """Quantiles, mean and std of margins.

    Args:
        phi: Per-example margins, shape (n,).
        quantiles: Levels in [0, 1]; key ``p{100·q:g}`` (0.05 → "p5").

    Returns:
        ``{"p5", "p25", "p50", "p75", "p95", "mean", "std", "n"}``; every statistic None (with a
        DegenerateInputWarning) when n = 0. Known answer: φ = [0, 1, 2, 3, 4] ⇒ p50 = 2, p25 = 1, mean = 2.
    """
    a = _finite_1d(phi)
    if any(not 0.0 <= q <= 1.0 for q in quantiles):
        raise ValueError(f"quantiles must lie in [0, 1], got {tuple(quantiles)}")
    keys = [f"p{100 * q:g}" for q in quantiles]
    if a.size == 0:
        warnings.warn("margin_summary: empty input", DegenerateInputWarning, stacklevel=2)
        return {**dict.fromkeys([*keys, "mean", "std"]), "n": 0}
    out: dict[str, Any] = {k: float(v) for k, v in zip(keys, np.quantile(a, quantiles), strict=True)}
    out.update(mean=float(a.mean()), std=float(a.std(ddof=1)) if a.size > 1 else 0.0, n=int(a.size))
    return out


def median_se(x: ArrayLike) -> float | None:
    """Distribution-free standard error of the sample median: (Q(0.5 + 0.5/√n) − Q(0.5 − 0.5/√n)) / 2.

    Returns None for n < 2 (no spread to estimate); 0 when the central values are tied. Known answer: for
    x = 0, 1, …, 99 (n = 100) the quantiles 0.45 and 0.55 are 44.55 and 54.45 ⇒ 4.95.
    """
    a = _finite_1d(x)
    if a.size < 2:
        return None
    h = 0.5 / math.sqrt(a.size)
    lo, hi = np.quantile(a, [max(0.0, 0.5 - h), min(1.0, 0.5 + h)])
    return float(hi - lo) / 2.0
