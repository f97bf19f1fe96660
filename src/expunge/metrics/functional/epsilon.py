"""NeurIPS 2023 Machine Unlearning Challenge ε-score (Triantafillou et al., arXiv 2406.09073).

Per forget example, compare φ (logit-scaled confidence) under N unlearned models with φ under N retrained models:
estimate the best (ε, δ)-distinguisher over a family of single- and double-threshold tests, turn ε into bucket
points H(ε) and average over the forget set.

References:
    - Triantafillou et al., "Are we making progress in unlearning? Findings from the first NeurIPS unlearning
      competition", arXiv 2406.09073.
    - google-deepmind/unlearning_evaluation ``metric.py`` (``_get_single_threshold_rates``,
      ``_get_double_threshold_rates``, ``_get_epsilons``, ``compute_forget_score_from_confs``) and ``main.py``.

Differences from the reference (deliberate; each noted where it happens): CPU only (no ``.cuda()``); the 0/0
peakiness ratio of two point masses is decided directly; its ``assert thr_eps`` (truth value of an array, which
raises for any example with more than one surviving threshold) is replaced by "at least one survives"; rates and
ε are float64 (the reference averages in float32, so ε may differ in the 7th digit); rates come from sorted samples
and ``searchsorted`` instead of (models × thresholds) comparison matrices, giving the same counts.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from expunge.errors import DegenerateInputWarning

DELTA = 1e-5
EPS_CAP = 50.0
THRESHOLDS_PER_UNIT = 100
BUFFER = 2.0
PEAKY_RATIO = 0.01
BUCKET_WIDTH = 0.5
PDF_BINS = 13
FULL_N_MODELS = 512

BinsSource = Literal["code", "pdf"]
F64 = NDArray[np.float64]


def epsilon_from_rates(fpr: ArrayLike, fnr: ArrayLike, delta: float = DELTA) -> F64 | float:
    """ε of one threshold test from its error rates (``metric.py:_get_epsilons``), elementwise.

    ε_t = max(0, log(1 − δ − FPR) − log FNR, log(1 − δ − FNR) − log FPR); a term whose log argument is ≤ 0 is
    ignored (the reference's ``nanmax``). FPR = FNR = 0 ⇒ +∞ (perfect separation). Exactly one of FPR, FNR zero ⇒
    the threshold is discarded (too few samples to estimate it), returned as −∞ so that a max over thresholds
    ignores it; −∞ also when both terms are undefined.

    Args:
        fpr: False-positive rate(s) in [0, 1].
        fnr: False-negative rate(s) in [0, 1].
        delta: δ of (ε, δ)-indistinguishability.

    Returns:
        ε per threshold (float for scalar input). Known answer: FPR 0.1, FNR 0.2 → max(1.504066, 2.079429).
    """
    a, b = np.broadcast_arrays(np.asarray(fpr, dtype=np.float64), np.asarray(fnr, dtype=np.float64))
    if not (np.all((a >= 0) & (a <= 1)) and np.all((b >= 0) & (b <= 1))):
        raise ValueError("fpr and fnr must lie in [0, 1]")
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = np.log(1.0 - delta - a) - np.log(b)
        t2 = np.log(1.0 - delta - b) - np.log(a)
    eps = np.fmax(t1, t2)  # fmax skips NaN (undefined term), like the reference's nanmax
    eps = np.where(np.isnan(eps), -np.inf, np.maximum(eps, 0.0))
    eps = np.where((a == 0) != (b == 0), -np.inf, eps)
    eps = np.where((a == 0) & (b == 0), np.inf, eps)
    return float(eps) if eps.ndim == 0 else eps


def n_buckets(n_models: int, bins_source: BinsSource = "code") -> int:
    """Number of 0.5-wide ε buckets B: code B = 2·⌈ln(N − 1)⌉ (N = 512 ⇒ 14, upper edge 7.0); PDF B = 13 ([0, 6.5))."""
    if bins_source == "pdf":
        return PDF_BINS
    if bins_source != "code":
        raise ValueError(f"bins_source must be 'code' or 'pdf', got {bins_source!r}")
    return 2 * math.ceil(math.log(n_models - 1)) if n_models > 2 else 0


def bucket_score(eps: ArrayLike, n_models: int, bins_source: BinsSource = "code") -> F64:
    """Bucket points H(ε) = 2^{−k} for ε ∈ [0.5k, 0.5(k + 1)), k = 0..B−1, and 0 for ε ≥ 0.5·B.

    Args:
        eps: ε values ≥ 0 (+∞ allowed, scores 0).
        n_models: N, models per group (sets B for ``bins_source="code"``).
        bins_source: "code" (reference metric.py) or "pdf" (challenge metric description).

    Returns:
        H per value. Known answers: ε = 0.49 → 1; 2.079429 → 2^−4; ε ≥ 7 at N = 512 → 0.
    """
    e = np.asarray(eps, dtype=np.float64)
    if np.any(np.isnan(e)) or np.any(e < 0):
        raise ValueError("ε must be non-negative and not NaN")
    b = n_buckets(n_models, bins_source)
    if b == 0:
        warnings.warn(f"N = {n_models} models gives no ε bucket (B = 2·ceil(ln(N − 1)) = 0): every H is 0",
                      DegenerateInputWarning, stacklevel=2)
    k = np.floor(np.minimum(e, 1e6) / BUCKET_WIDTH)  # same bucket as the reference's ``e < start + 0.5`` scan
    return np.where(k < b, np.exp2(-np.minimum(k, 1e6)), 0.0)


def _single_threshold_counts(pos: F64, neg: F64) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """(FP, FN) counts of "positive iff φ ≥ t" for t on ⌈(max − min)·100⌉ points spanning the pooled range."""
    lo, hi = min(pos[0], neg[0]), max(pos[-1], neg[-1])
    t = np.linspace(lo, hi, int(np.ceil((hi - lo) * THRESHOLDS_PER_UNIT)))
    fn = np.searchsorted(pos, t, side="left")
    fp = neg.size - np.searchsorted(neg, t, side="left")
    return fp, fn


def _double_threshold_counts(pos: F64, neg: F64) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """(FP, FN) counts of "positive iff t_l ≤ φ ≤ t_r" with the narrower group as positive (reference: swap on ties).

    Right thresholds: linspace(min_P + w − 2, max_P + 2) at 100/unit; for each t_r, 400 left thresholds on
    [t_r − w − 2, t_r − w + 2]; w = the smaller range. Same arithmetic order as the reference.
    """
    if pos[-1] - pos[0] >= neg[-1] - neg[0]:
        pos, neg = neg, pos
    w = pos[-1] - pos[0]
    lo, hi = pos[0] + w - BUFFER, pos[-1] + BUFFER
    right = np.linspace(lo, hi, int(np.ceil((hi - lo) * THRESHOLDS_PER_UNIT)))
    left = np.linspace(right - w - BUFFER, right - w + BUFFER, int(np.ceil(2 * BUFFER * THRESHOLDS_PER_UNIT)),
                       axis=1)
    left = np.ascontiguousarray(left).ravel()  # contiguous, row-sorted keys make searchsorted much faster

    def inside(x: F64) -> NDArray[np.intp]:  # #{x : t_l ≤ x ≤ t_r} per (t_l, t_r), 0 when t_l > t_r
        upto_r = np.repeat(np.searchsorted(x, right, side="right"), left.size // max(right.size, 1))
        return np.maximum(upto_r - np.searchsorted(x, left, side="left"), 0)

    return inside(neg), pos.size - inside(pos)


def _max_epsilon(fp: NDArray[np.intp], fn: NDArray[np.intp], n_neg: int, n_pos: int, delta: float) -> float:
    """max_t ε_t over thresholds given by their (FP, FN) counts; −∞ if every threshold is discarded.

    ε_t decreases in FNR at fixed FPR, so only the smallest valid FN per FP count is evaluated (≤ N + 1 pairs
    instead of ~160 000); the result equals the max over all thresholds.
    """
    if np.any((fp == 0) & (fn == 0)):
        return np.inf
    valid = (fp > 0) & (fn > 0)
    if not np.any(valid):
        return -np.inf
    best_fn = np.full(n_neg + 1, n_pos + 1)
    np.minimum.at(best_fn, fp[valid], fn[valid])
    k = np.flatnonzero(best_fn <= n_pos)
    return float(np.max(epsilon_from_rates(k / n_neg, best_fn[k] / n_pos, delta)))


def _example_epsilon(u: F64, r: F64, delta: float, eps_cap: float) -> tuple[float, str]:
    """ε of one example from sorted φ samples; returns (ε, how) with how ∈ {ok, peaky, point_masses, no_threshold}."""
    pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)  # positive = larger median
    ranges = (pos[-1] - pos[0], neg[-1] - neg[0])
    largest, smallest = max(ranges), min(ranges)
    if largest == 0.0:  # reference: 0/0 = NaN passes the check, then its assert fails
        return (0.0 if pos[0] == neg[0] else eps_cap), "point_masses"
    if smallest / largest < PEAKY_RATIO:
        return eps_cap, "peaky"
    # Equal group sizes, and ε_t is symmetric in (FPR, FNR), so the double rule's swap of roles does not matter.
    best = max(_max_epsilon(*_double_threshold_counts(pos, neg), neg.size, pos.size, delta),
               _max_epsilon(*_single_threshold_counts(pos, neg), neg.size, pos.size, delta))
    # The reference then runs ``assert thr_eps`` on a NumPy array: that raises for any example with more than one
    # surviving threshold (ambiguous truth value) and fails for a single ε of 0. The intent is "at least one survives".
    if best == -np.inf:
        # Every threshold had exactly one zero rate: the groups overlap only within one grid step (0.01), i.e. they
        # are separated at the grid's resolution. The reference's assert would fire here; we return the cap.
        return eps_cap, "no_threshold"
    return min(max(best, 0.0), eps_cap), "ok"


def epsilon_score(unlearned: ArrayLike, retrained: ArrayLike, *, delta: float = DELTA, eps_cap: float = EPS_CAP,
                  bins_source: BinsSource = "code", ra_ratio: float | None = None,
                  ta_ratio: float | None = None) -> dict[str, Any]:
    """NeurIPS'23 forget-quality score: mean over forget examples of H(ε) (``compute_forget_score_from_confs``).
    Higher is better (max 1).

    Per example: positive group = larger median φ; if min(range)/max(range) < 0.01 ⇒ ε = cap (two point masses:
    equal ⇒ 0, different ⇒ cap); else ε = clip(max over single and double thresholds of ε_t, 0, cap) with ε_t from
    :func:`epsilon_from_rates`. final = score · RA_U/RA_R · TA_U/TA_R (uncapped as in main.py) and a variant with
    each ratio capped at 1.

    Args:
        unlearned: (n_forget_examples, n_models) φ under N unlearned models (the reference's transpose).
        retrained: Same shape, φ under N retrained models.
        delta: δ (1e-5).
        eps_cap: Cap on ε (50).
        bins_source: "code" (B = 2·⌈ln(N − 1)⌉) or "pdf" (B = 13).
        ra_ratio: RA_U/RA_R (mean retain accuracy over the models); give with ``ta_ratio``.
        ta_ratio: TA_U/TA_R (mean test accuracy).

    Returns:
        dict(score, epsilons, bucket_scores, n_models, n_examples, reduced, bins, bins_source, delta, eps_cap,
        n_peaky, n_point_masses, n_no_threshold, n_deterministic[, final_score, final_score_capped]); score None
        with "reason" when there is no example or no model; a score with a "reason" (and a DegenerateInputWarning)
        when the unlearned φ is constant across the N runs for some example while the retrains' is not (a
        deterministic method: ε = cap there, whatever it forgot).
    """
    u, r = np.asarray(unlearned, dtype=np.float64), np.asarray(retrained, dtype=np.float64)
    if u.ndim != 2 or u.shape != r.shape:
        raise ValueError(f"unlearned and retrained must both be (n_forget_examples, n_models), got {u.shape} and "
                         f"{r.shape}")
    if not (np.all(np.isfinite(u)) and np.all(np.isfinite(r))):
        raise ValueError("φ values must be finite")
    if not 0.0 < delta < 1.0 or not eps_cap > 0.0:
        raise ValueError("need 0 < delta < 1 and eps_cap > 0")
    if (ra_ratio is None) != (ta_ratio is None):
        raise ValueError("give both ra_ratio and ta_ratio, or neither")
    if ra_ratio is not None and ta_ratio is not None:
        ra, ta = float(ra_ratio), float(ta_ratio)
        if not (math.isfinite(ra) and math.isfinite(ta) and ra >= 0 and ta >= 0):
            raise ValueError("ra_ratio and ta_ratio must be finite and non-negative")
    n_ex, n_models = u.shape
    bins = n_buckets(n_models, bins_source)
    out: dict[str, Any] = {"n_models": n_models, "n_examples": n_ex, "reduced": n_models < FULL_N_MODELS,
                           "bins": bins, "bins_source": bins_source, "delta": delta, "eps_cap": eps_cap}
    if n_ex == 0 or n_models == 0:
        reason = "no forget example" if n_ex == 0 else "no model"
        warnings.warn(f"epsilon_score: {reason}", DegenerateInputWarning, stacklevel=2)
        out.update(score=None, reason=reason, epsilons=np.zeros(n_ex), bucket_scores=np.zeros(n_ex))
        if ra_ratio is not None:
            out.update(final_score=None, final_score_capped=None)
        return out
    u, r = np.sort(u, axis=1), np.sort(r, axis=1)
    results = [_example_epsilon(u[i], r[i], delta, eps_cap) for i in range(n_ex)]
    eps = np.array([e for e, _ in results], dtype=np.float64)
    how = np.array([h for _, h in results])
    counts = {h: int(np.sum(how == h)) for h in ("peaky", "point_masses", "no_threshold")}
    if counts["point_masses"]:
        warnings.warn(f"{counts['point_masses']} example(s) have zero φ range in both groups (deterministic method? "
                      "use different seeds): ε = 0 if equal, cap otherwise", DegenerateInputWarning, stacklevel=2)
    if counts["no_threshold"]:
        warnings.warn(f"{counts['no_threshold']} example(s) have no usable threshold (groups separated within one "
                      "grid step): ε = cap", DegenerateInputWarning, stacklevel=2)
    # A deterministic method (identical φ under every unlearning seed) against spread oracles is "peaky": ε = cap and
    # H = 0 for those examples. That measures the method's determinism rather than its forgetting, so say so.
    deterministic = int(np.sum((u[:, -1] == u[:, 0]) & (r[:, -1] != r[:, 0])))
    if deterministic:
        out["reason"] = (f"φ is identical under all {n_models} unlearning runs for {deterministic} of {n_ex} forget "
                         "example(s) (a deterministic method, or one that ignores its seed) while the retrains vary: "
                         "a point mass against a spread gives ε = cap, so the score reflects determinism, not "
                         "forgetting")
        warnings.warn(f"epsilon_score: {out['reason']}", DegenerateInputWarning, stacklevel=2)
    h = bucket_score(eps, n_models, bins_source)
    score = float(np.mean(h))
    out.update(score=score, epsilons=eps, bucket_scores=h, n_peaky=counts["peaky"],
               n_point_masses=counts["point_masses"], n_no_threshold=counts["no_threshold"],
               n_deterministic=deterministic)
    if ra_ratio is not None and ta_ratio is not None:
        out.update(final_score=score * ra * ta, final_score_capped=score * min(ra, 1.0) * min(ta, 1.0))
    return out
