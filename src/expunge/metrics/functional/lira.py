"""Per-example likelihood-ratio membership inference: LiRA (Carlini et al., S&P 2022) and U-LiRA (Hayes et al. 2024).

Pure NumPy/SciPy on logit-scaled confidences φ; every score is "higher = member".

Array layout (all functions): rows are target examples; shadow arrays are (n, K) or (n, K, A) with K shadow models
and an optional trailing axis of A queries (augmentations, e.g. identity + flip); targets are (n,) or (n, A).
NaN in a shadow array means "not applicable" (that shadow is not in this group for this example), so IN/OUT
groups of different sizes per example share one rectangular array (see :func:`split_by_mask`).

References:
    - Carlini, Chien, Nasr, Song, Terzis, Tramèr, "Membership Inference Attacks From First Principles", S&P 2022
      (arXiv 2112.03570); tensorflow/privacy ``research/mi_lira_2021/score.py`` (φ) and ``plot.py``
      (``generate_ours``, ``generate_ours_offline``, ``generate_global``, ``sweep``).
    - Hayes, Shumailov, Triantafillou, Khalifa, Papernot, "Inexact unlearning needs more careful evaluations to avoid
      a false sense of privacy", arXiv 2403.01218 (U-LiRA).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import logsumexp
from scipy.stats import norm
from sklearn.metrics import auc as _sk_auc
from sklearn.metrics import roc_curve

from expunge.errors import DegenerateInputWarning

SIGMA_FLOOR = 1e-30  # added to every σ, as in the reference (plot.py: ``std + 1e-30``)
GLOBAL_VARIANCE_BELOW = 64  # one global σ when K < 64: per-example σ is noise with few shadows (LiRA's fixed variance)

F64 = NDArray[np.float64]


def logit_scaled_confidence(logits: ArrayLike, y: ArrayLike) -> F64:
    """Logit-scaled confidence φ = log p_y − log Σ_{j≠y} p_j = z_y − logsumexp_{j≠y} z_j, in float64.

    Computed directly from logits with a stable logsumexp, so it never over/underflows. The reference form
    (score.py, metric.py: softmax, then ``log(p + 1e-45)``) agrees to ~1e-12 except when a probability underflows,
    where it saturates near ±103.6 (float32 logits) and ours keeps the exact margin.

    Args:
        logits: (..., C) logits, C ≥ 2.
        y: (...) integer labels in [0, C).

    Returns:
        φ with shape ``logits.shape[:-1]``. Known answer: z = (2, 0, 0), y = 0 → 2 − ln 2 = 1.306853.

    Raises:
        ValueError: C < 2, shape mismatch, labels out of range or non-integer, non-finite logits.
    """
    z = np.asarray(logits, dtype=np.float64)
    lab = np.asarray(y)
    if z.ndim < 1 or z.shape[-1] < 2:
        raise ValueError(f"logits must be (..., C) with C >= 2 classes, got shape {z.shape}")
    if lab.shape != z.shape[:-1]:
        raise ValueError(f"labels shape {lab.shape} must equal logits.shape[:-1] = {z.shape[:-1]}")
    if lab.size and (not np.issubdtype(lab.dtype, np.integer) or lab.min() < 0 or lab.max() >= z.shape[-1]):
        raise ValueError(f"labels must be integers in [0, {z.shape[-1]})")
    if not np.all(np.isfinite(z)):
        raise ValueError("logits must be finite")
    idx = lab[..., None].astype(np.intp)
    z_y = np.take_along_axis(z, idx, axis=-1)[..., 0]
    others = z.copy()
    np.put_along_axis(others, idx, -np.inf, axis=-1)
    return z_y - logsumexp(others, axis=-1)


def split_by_mask(shadow_phi: ArrayLike, member: ArrayLike) -> tuple[F64, F64]:
    """Split one shadow φ array into (IN, OUT) arrays with NaN where not applicable.

    Args:
        shadow_phi: (n, K) or (n, K, A) φ of each example under each shadow.
        member: (n, K) boolean, True where the shadow trained on the example (LiRA ``keep.T``).

    Returns:
        ``(in_phi, out_phi)``, each shaped like ``shadow_phi``.
    """
    phi = np.asarray(shadow_phi, dtype=np.float64)
    m = np.asarray(member, dtype=bool)
    if phi.ndim not in (2, 3) or m.shape != phi.shape[:2]:
        raise ValueError(f"member mask shape {m.shape} must equal shadow_phi.shape[:2] ({phi.shape[:2]})")
    m = m[..., None] if phi.ndim == 3 else m
    return np.where(m, phi, np.nan), np.where(m, np.nan, phi)


def _as_target(target: ArrayLike) -> F64:
    t = np.asarray(target, dtype=np.float64)
    t = t[:, None] if t.ndim == 1 else t
    if t.ndim != 2:
        raise ValueError(f"target φ must be (n,) or (n, A), got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError("target φ must be finite")
    return t


def _as_shadow(shadow: ArrayLike, t: F64, name: str) -> F64:
    s = np.asarray(shadow, dtype=np.float64)
    s = s[..., None] if s.ndim == 2 else s
    if s.ndim != 3 or s.shape[0] != t.shape[0] or s.shape[2] != t.shape[1]:
        raise ValueError(f"{name} must be (n, K) or (n, K, A) matching target (n={t.shape[0]}, A={t.shape[1]}), "
                         f"got shape {np.shape(shadow)}")
    if np.any(np.isinf(s)):
        raise ValueError(f"{name} must be finite (NaN marks 'not applicable')")
    return s


def _has_values(s: F64) -> NDArray[np.bool_]:
    """Per example: every query has at least one shadow value."""
    return np.all(np.any(~np.isnan(s), axis=1), axis=1)


def _gaussian_fit(s: F64, fixed_variance: bool, name: str) -> tuple[F64, F64 | float]:
    """μ = median over shadows (nan-aware), σ = std (ddof 0) per example and query, or one std of all values pooled
    over examples, shadows and queries when ``fixed_variance`` (plot.py's ``np.std(dat)``). Rows must have values."""
    mu = np.nanmedian(s, axis=1)
    sigma: F64 | float = float(np.nanstd(s)) if fixed_variance else np.nanstd(s, axis=1)
    if np.any(np.asarray(sigma) == 0.0):
        hint = "" if fixed_variance else " (use the global variance for small K)"
        warnings.warn(f"zero variance in the {name} shadow φ for {int(np.sum(np.asarray(sigma) == 0.0))} "
                      f"fit(s); σ floored at {SIGMA_FLOOR} as in the reference{hint}", DegenerateInputWarning,
                      stacklevel=4)
    return mu, sigma


def gaussian_logpdf(x: ArrayLike, mu: ArrayLike, sigma: ArrayLike) -> F64:
    """log N(x; μ, (σ + 1e-30)²) via ``scipy.stats.norm.logpdf`` (the 1e-30 floor is the reference's)."""
    return norm.logpdf(x, loc=mu, scale=np.asarray(sigma, dtype=np.float64) + SIGMA_FLOOR)


def _lr(t: F64, s_in: F64, s_out: F64, fixed_variance: bool) -> F64:
    mu_in, sd_in = _gaussian_fit(s_in, fixed_variance, "IN")
    mu_out, sd_out = _gaussian_fit(s_out, fixed_variance, "OUT")
    return np.mean(gaussian_logpdf(t, mu_in, sd_in) - gaussian_logpdf(t, mu_out, sd_out), axis=1)


def _require_rows(**arrays: F64) -> None:
    for name, s in arrays.items():
        if not np.all(_has_values(s)):
            raise ValueError(f"every example needs at least one {name} shadow value per query")


def gaussian_lr_score(target: ArrayLike, in_scores: ArrayLike, out_scores: ArrayLike,
                      fixed_variance: bool) -> F64:
    """Online LiRA score (Carlini et al., S&P 2022, arXiv 2112.03570; tensorflow/privacy ``plot.py``), higher = member.

    score = mean_a [log N(φ_t; μ_in, σ_in²) − log N(φ_t; μ_out, σ_out²)], μ = median, σ = std (+1e-30) per example
    and query. ``fixed_variance``: σ_in = std of all IN values, σ_out = std of all OUT values (pooled over examples).
    The reference (plot.py ``generate_ours(fix_variance=True)``) uses the IN std for σ_out too — not copied — and
    returns the negated score. Required when K < 64. Known answer: μ_in 1, μ_out 0, σ 1: φ_t = 2 → 1.5, 0.5 → 0.

    Args:
        target: (n,) or (n, A) φ under the target model.
        in_scores: (n, K_in[, A]) shadow φ where the example was trained on (NaN = not applicable).
        out_scores: (n, K_out[, A]) shadow φ where it was not.
        fixed_variance: Use one global σ per group.

    Returns:
        (n,) scores.
    """
    t = _as_target(target)
    s_in, s_out = _as_shadow(in_scores, t, "in_scores"), _as_shadow(out_scores, t, "out_scores")
    _require_rows(IN=s_in, OUT=s_out)
    return _lr(t, s_in, s_out, fixed_variance)


def offline_lr_score(target: ArrayLike, out_scores: ArrayLike, fixed_variance: bool = False,
                     one_sided: bool = False) -> F64:
    """Offline LiRA score (Carlini et al. 2022, ``generate_ours_offline``), OUT shadows only, higher = member.

    Two-sided (reference ``generate_ours_offline``, sign flipped): score = −mean_a log N(φ_t; μ_out, σ_out²).
    ``one_sided``: score = −mean_a log(1 − Φ(z)), z = (φ_t − μ_out)/σ_out — a strictly increasing transform of the
    one-sided Φ(z) test (same ROC with one query) that, unlike Φ, does not round to 1 for large z (ties at low FPR).

    Args:
        target: (n,) or (n, A) φ under the target model.
        out_scores: (n, K_out[, A]) OUT shadow φ (NaN = not applicable).
        fixed_variance: One global σ_out (std of all OUT values).
        one_sided: Use the one-sided tail test.

    Returns:
        (n,) scores.
    """
    t = _as_target(target)
    s_out = _as_shadow(out_scores, t, "out_scores")
    _require_rows(OUT=s_out)
    mu, sd = _gaussian_fit(s_out, fixed_variance, "OUT")
    if one_sided:
        return np.mean(-norm.logsf(t, loc=mu, scale=np.asarray(sd) + SIGMA_FLOOR), axis=1)
    return np.mean(-gaussian_logpdf(t, mu, sd), axis=1)


def global_threshold_score(target: ArrayLike) -> F64:
    """Global-threshold attack score (Carlini et al. 2022, ``generate_global``): φ_t averaged over queries, higher =
    member."""
    return np.mean(_as_target(target), axis=1)


def _fpr_key(fpr: float) -> str:
    return f"tpr_at_{fpr * 100:g}pct_fpr"


def roc_summary(member_scores: ArrayLike, nonmember_scores: ArrayLike,
                fprs: Sequence[float] = (0.01, 0.001)) -> dict[str, Any]:
    """ROC summary of an attack score (higher = member), via ``sklearn.metrics.roc_curve``.

    - auc: area under the full ROC curve (trapezoids; ties count one half).
    - balanced_acc = max over thresholds of 1 − (FPR + FNR)/2 (reference ``sweep``); ≥ 0.5 by construction.
    - tpr_at_{100·x}pct_fpr = max {TPR_i : FPR_i ≤ x} over the ROC points, i.e. the best threshold whose FPR does not
      exceed x; no interpolation between points (that would need randomised attacks). The reference (plot.py
      ``do_plot``) uses FPR < x strictly; the two differ only when x·n_nonmembers is an integer. With fewer than
      1/x non-members this is TPR at FPR = 0 (see ``n_nonmembers``).

    Args:
        member_scores: Scores of members (label 1).
        nonmember_scores: Scores of non-members (label 0).
        fprs: FPR budgets in (0, 1).

    Returns:
        dict(auc, balanced_acc, tpr_at_1pct_fpr, tpr_at_0.1pct_fpr, n_members, n_nonmembers, fpr, tpr); metric values
        are None with "reason" when a side is empty.
    """
    pos = np.asarray(member_scores, dtype=np.float64).ravel()
    neg = np.asarray(nonmember_scores, dtype=np.float64).ravel()
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(neg))):
        raise ValueError("attack scores must be finite")
    if any(not 0.0 < x < 1.0 for x in fprs):
        raise ValueError(f"fprs must lie in (0, 1), got {tuple(fprs)}")
    out: dict[str, Any] = {"n_members": int(pos.size), "n_nonmembers": int(neg.size)}
    if pos.size == 0 or neg.size == 0:
        reason = "no member scores" if pos.size == 0 else "no non-member scores"
        warnings.warn(f"roc_summary: {reason}", DegenerateInputWarning, stacklevel=2)
        out.update(dict.fromkeys(["auc", "balanced_acc", *map(_fpr_key, fprs)]), reason=reason)
        return out
    labels = np.r_[np.ones(pos.size), np.zeros(neg.size)]
    fpr, tpr, _ = roc_curve(labels, np.r_[pos, neg], drop_intermediate=False)
    out["auc"] = float(_sk_auc(fpr, tpr))
    out["balanced_acc"] = float(np.max(1.0 - (fpr + (1.0 - tpr)) / 2.0))
    for x in fprs:
        out[_fpr_key(x)] = float(np.max(tpr[fpr <= x]))  # (0, 0) is always on the curve
    out["fpr"], out["tpr"] = fpr, tpr
    return out


def ulira(target_forget_phi: ArrayLike, target_heldout_phi: ArrayLike, shadow_unlearned_phi: ArrayLike,
          shadow_out_phi: ArrayLike, *, variance: Literal["auto", "global", "per_example"] = "auto",
          global_variance_below: int = GLOBAL_VARIANCE_BELOW,
          fprs: Sequence[float] = (0.01, 0.001)) -> dict[str, Any]:
    """U-LiRA (Hayes et al., arXiv 2403.01218): can the unlearned target tell its forget examples from held-out ones?

    Rows of the shadow arrays are the n_f forget examples followed by the n_h held-out examples; columns are the K
    shadows (each trained on a random half of the pool, then unlearned a random subset of its IN data with the method
    under test). For row x, ``shadow_unlearned_phi[x, k]`` is φ(x) under shadow k if k trained on x and then unlearned
    it, else NaN; ``shadow_out_phi[x, k]`` is φ(x) if k never saw x, else NaN (shadows that kept x are NaN in both).

    score(x) = mean_a [log N(φ_t; μ_u, σ_u²) − log N(φ_t; μ_out, σ_out²)] (higher = "was unlearned"), μ = median,
    σ = std per example, or one σ per group pooled over examples when ``variance`` is "global" ("auto": global iff
    K < ``global_variance_below``). Forget examples are label 1, held-out label 0. Rows without any unlearned or
    any OUT shadow value cannot be scored and are dropped (warning). No subsampling to balance the sides: AUC,
    balanced accuracy and TPR at FPR do not depend on the class ratio.

    Args:
        target_forget_phi: (n_f,) or (n_f, A) φ of the forget examples under the target unlearned model.
        target_heldout_phi: (n_h,) or (n_h, A) φ of held-out (never trained) examples under the same model.
        shadow_unlearned_phi: (n_f + n_h, K[, A]) shadow φ, NaN where not applicable.
        shadow_out_phi: (n_f + n_h, K[, A]) shadow φ, NaN where not applicable.
        variance: "auto", "global" or "per_example".
        global_variance_below: K below which "auto" uses the global variance.
        fprs: FPR budgets for TPR at low FPR.

    Returns:
        dict(auc, balanced_acc, tpr_at_1pct_fpr, tpr_at_0.1pct_fpr, scores, is_forget, evaluated, n_shadows,
        variance, n_forget, n_heldout, n_dropped, fpr, tpr). ``scores``/``is_forget`` cover the evaluated rows only
        (``evaluated`` is the boolean row mask over forget-then-held-out rows); the forget part of ``scores`` is the
        per-example vulnerability distribution.
    """
    tf, th = _as_target(target_forget_phi), _as_target(target_heldout_phi)
    if tf.shape[1] != th.shape[1]:
        raise ValueError("forget and held-out targets must have the same number of queries")
    t = np.concatenate([tf, th])
    s_u = _as_shadow(shadow_unlearned_phi, t, "shadow_unlearned_phi")
    s_o = _as_shadow(shadow_out_phi, t, "shadow_out_phi")
    if s_u.shape != s_o.shape:
        raise ValueError(f"shadow arrays must share one shape (same K shadows), got {s_u.shape} and {s_o.shape}")
    if variance not in ("auto", "global", "per_example"):
        raise ValueError(f"variance must be 'auto', 'global' or 'per_example', got {variance!r}")
    k = s_u.shape[1]
    use_global = variance == "global" or (variance == "auto" and k < global_variance_below)
    is_forget_all = np.r_[np.ones(tf.shape[0], bool), np.zeros(th.shape[0], bool)]
    ok = _has_values(s_u) & _has_values(s_o)
    if not np.all(ok):
        warnings.warn(f"U-LiRA: {int(np.sum(~ok))} example(s) have no unlearned or no OUT shadow value and are "
                      "dropped", DegenerateInputWarning, stacklevel=2)
    scores = _lr(t[ok], s_u[ok], s_o[ok], use_global) if np.any(ok) else np.zeros(0)
    is_forget = is_forget_all[ok]
    out = roc_summary(scores[is_forget], scores[~is_forget], fprs=fprs)
    out.update(scores=scores, is_forget=is_forget, evaluated=ok, n_shadows=int(k),
               variance="global" if use_global else "per_example", n_forget=int(tf.shape[0]),
               n_heldout=int(th.shape[0]), n_dropped=int(np.sum(~ok)))
    return out
