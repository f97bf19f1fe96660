"""Pure functions behind the language-model membership attacks and PrivLeak (:mod:`expunge.metrics.llm_privacy`).

Every score here is oriented *member-high* (a higher score ⇒ more likely a training member), so
``expunge.metrics.functional.mia.mia_auc(forget_scores, holdout_scores)`` is P(s(forget) > s(holdout)): the AUC
OpenUnlearning reports (``src/evals/metrics/mia/utils.py:mia_auc`` scores non-member-high statistics with the forget
set labelled 0, which is the same number; its note: "auc is 1 when the forget data is much more likely than the
holdout data").

Attacks (token log-probabilities of the answer tokens, the final end-of-sequence token excluded as in
OpenUnlearning's ``tokenwise_logprobs``):

* LOSS (Yeom et al., CSF 2018): −ℓ̄, ℓ̄ the mean answer NLL (every labelled token, as ``evaluate_probability``).
* zlib (Carlini et al., USENIX Security 2021): −ℓ̄ / |zlib(text)|, text the answer as decoded, |·| compressed bytes.
* Min-K% Prob (Shi et al., arXiv 2310.16789): mean of the ⌊k·n⌋ (at least 1) lowest token log-probabilities, k = 0.4.
* Min-K%++ (Zhang et al., arXiv 2404.02936): the same over z_t = (log p(y_t) − μ_t) / σ_t, μ_t and σ_t² the mean and
  variance of log p under the model's next-token distribution p (σ_t² floored at 1e-6, OpenUnlearning).

PrivLeak (MUSE, Shi et al. arXiv 2407.06460, with Min-K% k = 0.4): ((1 − AUC_U) − (1 − AUC_R)) / (1 − AUC_R) × 100,
AUC member-high as above. This is OpenUnlearning's ``privacy.py:privleak`` (which converts its AUC with 1 − AUC
because MUSE reported the non-member-high AUC) and MUSE's published convention: an Original that memorised the forget
set (AUC_U ≈ 1) scores ≈ −100, the retain oracle 0; negative ⇒ under-unlearning (the forget set still looks like
training data), positive ⇒ over-unlearning (it looks *less* like training data than never-seen people do). The spec's
"(AUC_U − AUC_R) / AUC_R × 100" is the same formula written with MUSE's non-member-high AUC (AUC' = 1 − AUC); its
known answer "AUC_U = 0.6, AUC_R = 0.5 ⇒ +20" is member-high AUC_U = 0.4, AUC_R = 0.5 here.
"""

from __future__ import annotations

import zlib

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "MIN_K_FRACTION",
    "loss_attack_score",
    "min_k_plus_plus_score",
    "min_k_score",
    "next_token_moments",
    "privleak",
    "zlib_attack_score",
]

MIN_K_FRACTION = 0.4  # MUSE / OpenUnlearning configs (mia_min_k.yaml, mia_min_k_plus_plus.yaml, privleak)
SIGMA2_FLOOR = 1e-6  # OpenUnlearning min_k_plus_plus.py


def _bottom_k_mean(values: NDArray[np.float64], k: float) -> float:
    if values.size == 0:
        return float("nan")
    n = max(1, int(values.size * k))
    return float(np.sort(values)[:n].mean())


def min_k_score(token_logprobs: ArrayLike, k: float = MIN_K_FRACTION) -> float:
    """Mean of the ⌊k·n⌋ (≥ 1) lowest token log-probabilities of one sequence (member-high); NaN for no tokens.

    Known answer (spec §6.6): [−1, −2, −3, −4, −5], k = 0.4 ⇒ (−5 − 4)/2 = −4.5."""
    if not 0 < k <= 1:
        raise ValueError(f"k must be in (0, 1], got {k}")
    return _bottom_k_mean(np.asarray(token_logprobs, dtype=np.float64).reshape(-1), k)


def next_token_moments(log_probs: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """μ_t = Σ_v p_v log p_v and σ_t² = Σ_v p_v (log p_v)² − μ_t² of next-token log-distributions ``[T, V]``."""
    lp = np.asarray(log_probs, dtype=np.float64)
    p = np.exp(lp)
    mu = (p * lp).sum(-1)
    return mu, (p * lp * lp).sum(-1) - mu * mu


def min_k_plus_plus_score(token_logprobs: ArrayLike, mu: ArrayLike, sigma2: ArrayLike,
                          k: float = MIN_K_FRACTION) -> float:
    """Min-K%++: the bottom-k mean of z_t = (log p(y_t) − μ_t)/σ_t (member-high); NaN for no tokens.

    Known answer: next-token distribution (0.8, 0.2), label the likelier token ⇒ z = 0.2 ln 4 / (0.4 ln 4) = 0.5;
    the other ⇒ −0.8 ln 4 / (0.4 ln 4) = −2."""
    if not 0 < k <= 1:
        raise ValueError(f"k must be in (0, 1], got {k}")
    lp = np.asarray(token_logprobs, dtype=np.float64).reshape(-1)
    z = (lp - np.asarray(mu, dtype=np.float64).reshape(-1)) / np.sqrt(
        np.maximum(np.asarray(sigma2, dtype=np.float64).reshape(-1), SIGMA2_FLOOR))
    return _bottom_k_mean(z, k)


def loss_attack_score(mean_nll: ArrayLike) -> NDArray[np.float64]:
    """LOSS attack, member-high: −ℓ̄ per example."""
    return -np.asarray(mean_nll, dtype=np.float64)


def zlib_attack_score(mean_nll: float, text: str) -> float:
    """zlib attack, member-high: −ℓ̄ / len(zlib.compress(text as UTF-8)).

    Known answer: ℓ̄ = 2, text "" (zlib output of 8 bytes) ⇒ −0.25."""
    return -float(mean_nll) / len(zlib.compress(text.encode("utf-8")))


def privleak(auc: float | None, reference_auc: float | None) -> float | None:
    """((1 − AUC) − (1 − AUC_ref)) / (1 − AUC_ref) × 100 of member-high Min-K% AUCs (see the module docstring);
    None when either is missing or the reference AUC is 1 (the oracle itself separates forget from held-out
    perfectly: no scale; OpenUnlearning divides by 1e-10 instead).

    Known answers: AUC 0.4 vs 0.5 ⇒ +20; 0.6 vs 0.5 ⇒ −20; 1.0 vs 0.5 ⇒ −100; equal ⇒ 0."""
    if auc is None or reference_auc is None:
        return None
    ref = 1.0 - float(reference_auc)
    if ref <= 0.0:
        return None
    return ((1.0 - float(auc)) - ref) / ref * 100.0
