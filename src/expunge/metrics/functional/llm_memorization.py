"""Pure functions behind the language-model memorisation and utility metrics (:mod:`expunge.metrics.llm_probability`,
:mod:`~expunge.metrics.llm_rouge`, :mod:`~expunge.metrics.llm_truth_ratio`, :mod:`~expunge.metrics.llm_utility`,
:mod:`~expunge.metrics.llm_memorization`): arrays of length-normalised answer NLLs, greedy token predictions and texts
in, numbers out.

Definitions follow OpenUnlearning (locuslab/open-unlearning ``src/evals/metrics/memorization.py``, ``utils.py``,
``privacy.py``, ``utility.py``) and ``../shared/spec/metrics.md`` §6, so that values are comparable:

* ℓ̄ = mean NLL of the answer tokens (``expunge.tasks.token_logprobs.answer_nll``), P̄ = exp(−ℓ̄)
  (``evaluate_probability``).
* Truth ratio R = geomean_k P̄(ã_k) / P̄(â) = exp(ℓ̄(â) − mean_k ℓ̄(ã_k)) (TOFU, Maini et al. arXiv 2401.06121;
  OpenUnlearning's "wrong / correct" with the perturbed losses averaged first, ``aggregate_to_1D``). Forget side:
  mean min(R, 1/R) (``closer_to_1_better``); retain / world side: mean max(0, 1 − R) (``true_better``). The legacy
  TOFU code used 1/R; the KS p-value is invariant to that, the summaries are not.
* Forget quality: ``scipy.stats.ks_2samp`` p-value of two samples of per-example truth ratios (``privacy.py:ks_test``).
* Model utility: harmonic mean of its components; any component 0 ⇒ 0 (``utility.py:hm_aggregate``).
* Exact memorisation (Tirumala et al., arXiv 2205.10770): the share of answer tokens whose teacher-forced argmax is the
  label. Extraction strength (Carlini et al. 2021; Wang et al., arXiv 2406.09179): 1 − k/n with k the smallest prefix
  length after which the argmax predictions reproduce the rest of the answer exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "exact_memorization_score",
    "extraction_strength_score",
    "forget_quality_pvalue",
    "harmonic_mean_utility",
    "normalised_probability",
    "probability_from_nll",
    "rouge_l_recall",
    "truth_ratio_forget_score",
    "truth_ratio_retain_score",
    "truth_ratios",
]

OPTION_EPS = 1e-10  # OpenUnlearning's denominators (probability_w_options)


def probability_from_nll(mean_nll: ArrayLike) -> NDArray[np.float64]:
    """P̄ = exp(−ℓ̄) per example: ``probability_from_nll([0, ln 2]) == [1, 0.5]``."""
    return np.exp(-np.asarray(mean_nll, dtype=np.float64))


def _per_item(wrong_nll: Sequence[ArrayLike] | ArrayLike, n: int, what: str) -> list[NDArray[np.float64]]:
    rows = [np.asarray(w, dtype=np.float64).reshape(-1) for w in wrong_nll]  # type: ignore[union-attr]
    if len(rows) != n:
        raise ValueError(f"{what}: {len(rows)} rows of perturbed-answer NLLs for {n} correct answers")
    if any(r.size == 0 for r in rows):
        raise ValueError(f"{what}: an item has no perturbed answer")
    return rows


def normalised_probability(correct_nll: ArrayLike, wrong_nll: Sequence[ArrayLike] | ArrayLike) -> NDArray[np.float64]:
    """P̄(a) / (P̄(a) + Σ_k P̄(ã_k)) per item (the world-facts "probability", OpenUnlearning
    ``probability_w_options``; ``wrong_nll`` may be ragged: one row of ℓ̄(ã_k) per item).

    Known answer: ℓ̄(a) = ln 2, ℓ̄(ã) = {ln 4, ln 4} ⇒ 0.5 / (0.5 + 0.25 + 0.25) = 0.5."""
    c = np.asarray(correct_nll, dtype=np.float64).reshape(-1)
    rows = _per_item(wrong_nll, len(c), "normalised_probability")
    p_c = np.exp(-c)
    p_w = np.array([np.exp(-r).sum() for r in rows])
    return p_c / (p_c + p_w + OPTION_EPS)


def truth_ratios(correct_nll: ArrayLike, wrong_nll: Sequence[ArrayLike] | ArrayLike) -> NDArray[np.float64]:
    """Per-item R = exp(ℓ̄(â) − mean_k ℓ̄(ã_k)) (perturbed over paraphrased / correct).

    Known answer (spec §6.1): ℓ̄(â) = 1, ℓ̄(ã) = {2, 2} ⇒ R = e^{−1} = 0.367879."""
    c = np.asarray(correct_nll, dtype=np.float64).reshape(-1)
    rows = _per_item(wrong_nll, len(c), "truth_ratios")
    return np.exp(c - np.array([r.mean() for r in rows]))


def truth_ratio_forget_score(ratios: ArrayLike) -> float | None:
    """mean min(R, 1/R) (1 = the model cannot tell correct from perturbed answers); None for no items."""
    r = np.asarray(ratios, dtype=np.float64).reshape(-1)
    if r.size == 0:
        return None
    return float(np.mean(np.minimum(r, 1.0 / np.maximum(r, 1e-300))))


def truth_ratio_retain_score(ratios: ArrayLike) -> float | None:
    """mean max(0, 1 − R) (1 = the correct answer is far likelier than every perturbed one); None for no items.

    Known answer: R = e^{−1} ⇒ 0.632121."""
    r = np.asarray(ratios, dtype=np.float64).reshape(-1)
    if r.size == 0:
        return None
    return float(np.mean(np.maximum(0.0, 1.0 - r)))


def forget_quality_pvalue(ratios: ArrayLike, reference_ratios: ArrayLike) -> float | None:
    """Two-sample KS p-value (``scipy.stats.ks_2samp``, default two-sided, exact for small samples) between a model's
    per-example forget truth ratios and the retain oracle's; None when a side is empty.

    Known answers (spec §6.2): [1, 2, 3] vs [4, 5, 6] ⇒ 0.1; identical samples ⇒ 1."""
    from scipy.stats import ks_2samp

    a = np.asarray(ratios, dtype=np.float64).reshape(-1)
    b = np.asarray(reference_ratios, dtype=np.float64).reshape(-1)
    if a.size == 0 or b.size == 0:
        return None
    return float(ks_2samp(a, b).pvalue)


def harmonic_mean_utility(values: Sequence[float]) -> float | None:
    """n / Σ 1/v over the components; any component ≤ 0 ⇒ 0 (a model with no utility on one axis has none);
    None for no components.

    Known answer (spec §6.3): eight values 0.5 and one 1.0 ⇒ 9 / 17 = 0.529412."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        return None
    if (v <= 0).any():
        return 0.0
    return float(v.size / np.sum(1.0 / v))


@lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer  # the `llm` extra

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l_recall(generation: str, reference: str) -> float:
    """ROUGE-L recall = LCS(generation, reference) / |reference| tokens, with ``rouge_score``'s
    ``RougeScorer(['rougeL'], use_stemmer=True)`` (TOFU; OpenUnlearning ``eval_text_similarity``: score(target=
    ground truth, prediction=generation)).

    Known answer (spec §6.4): reference "the cat sat", generation "the cat" ⇒ 2/3."""
    return float(_rouge_scorer().score(reference, generation)["rougeL"].recall)


def _pair(preds: ArrayLike, labels: ArrayLike) -> tuple[NDArray[Any], NDArray[Any]]:
    p, y = np.asarray(preds).reshape(-1), np.asarray(labels).reshape(-1)
    if p.shape != y.shape:
        raise ValueError(f"predictions {p.shape} and labels {y.shape} differ in length")
    return p, y


def exact_memorization_score(preds: ArrayLike, labels: ArrayLike) -> float | None:
    """Share of answer tokens whose teacher-forced argmax equals the label (one sequence); None for no tokens.

    Known answer: preds [5, 6, 9], labels [5, 6, 7] ⇒ 2/3."""
    p, y = _pair(preds, labels)
    if y.size == 0:
        return None
    return float(np.mean(p == y))


def extraction_strength_score(preds: ArrayLike, labels: ArrayLike) -> float | None:
    """1 − k/n, k the smallest prefix length such that the argmax predictions given the true prefix reproduce the
    remaining n − k answer tokens (teacher-forced argmax = greedy decoding once every predicted token is right);
    k = n (score 0) when not even the last token is reproduced. None for no tokens.

    Choice: OpenUnlearning's loop (``memorization.py:extraction_strength``) leaves k = n − 1 when no suffix matches,
    scoring 1/n for a model that reproduces nothing; we follow the paper's definition (Wang et al., arXiv
    2406.09179), which gives 0. The two agree whenever the last token is reproduced.

    Known answers: labels [5, 6, 7], preds [9, 6, 7] ⇒ 1 − 1/3 = 2/3; preds [5, 6, 7] ⇒ 1; preds [5, 6, 9] ⇒ 0."""
    p, y = _pair(preds, labels)
    n = y.size
    if n == 0:
        return None
    wrong = np.flatnonzero(p != y)
    k = 0 if wrong.size == 0 else int(wrong[-1]) + 1  # the suffix after the last miss is reproduced
    return 1.0 - k / n
