"""Meta-evaluation of the language-model forget metrics: are they faithful, are they robust? (pure functions behind
``benchmarks/llm_meta_eval.py``).

After OpenUnlearning's meta-evaluation (Dorna et al., "OpenUnlearning: Accelerating LLM Unlearning via Unified
Benchmarking of Methods and Metrics", arXiv 2506.12618, §4), on metric values m oriented so that higher means *more
knowledge of the forget set* (:func:`knowledge`):

* **Faithfulness**: the ROC AUC of m separating models that learned the forget set (P: Originals over seeds) from
  models that never did (N: retain oracles over seeds), P(m(P) > m(N)) with ties ½. 1 = the metric always ranks a
  model that knows above one that does not; 0.5 = blind.
* **Relearning robustness** R = min(Δ_ret / Δ_unl, 1), Δ = m_after − m_before of a short fine-tune on forget examples,
  for the unlearned model (unl) and the retain oracle (ret): an unlearned model that regains the knowledge faster than
  a model that never had it was hiding it, and a metric that called it forgotten is not robust.
* **Quantisation robustness** Q = min(m_before / m_after, 1) of the unlearned model before and after weight
  quantisation: knowledge that quantisation brings back (Zhang et al., arXiv 2410.16454) was hidden.
* Robustness = harmonic mean of R and Q; overall = harmonic mean of faithfulness and robustness.

Choices (the paper's text was not available offline; the ratio forms above are as recalled and as restated in the
header of gnueaj/unlearning-depth-score ``scripts/meta_eval_robustness.py`` — whose header writes Q with the ratio the
other way round; we keep the orientation that penalises *recovered* knowledge, the stated purpose):
ratios are None when a denominator or a value is ≤ 0 (no scale; a metric whose knowledge orientation is negative, e.g.
over-unlearning PrivLeak); Δ_unl ≤ 0 (relearning recovers nothing) gives R = 1. The symmetric variants of
gnueaj/unlearning-depth-score (their meta-evaluation page) are reported beside them:
Q_sym = 1 − |m_a − m_b| / (|m_a| + |m_b|), R_sym = 1 − |Δ_unl − Δ_ret| / (|Δ_unl| + |Δ_ret|) (1 when both are 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "KNOWLEDGE_ORIENTATION",
    "faithfulness_auc",
    "harmonic_mean_of",
    "knowledge",
    "meta_evaluation_table",
    "quantisation_robustness",
    "quantisation_robustness_symmetric",
    "relearn_robustness",
    "relearn_robustness_symmetric",
]

# How each forget metric maps to "knowledge of the forget set" (higher = more): "higher" as is; "one_minus" for
# [0, 1] metrics that fall as knowledge rises; "privleak" for PrivLeak (−100 = the Original): −value / 100.
KNOWLEDGE_ORIENTATION: dict[str, str] = {
    "llm_prob_forget": "higher", "llm_rouge_forget": "higher", "llm_truth_ratio_forget": "one_minus",
    "llm_forget_quality": "one_minus", "llm_exact_memorization": "higher", "llm_extraction_strength": "higher",
    "llm_mia_loss_auc": "higher", "llm_mia_zlib_auc": "higher", "llm_mia_mink_auc": "higher",
    "llm_mia_minkpp_auc": "higher", "llm_privleak": "privleak",
}


def knowledge(metric: str, value: float | None) -> float | None:
    """``value`` of ``metric`` oriented so that higher means more knowledge of the forget set."""
    if value is None or not math.isfinite(value):
        return None
    how = KNOWLEDGE_ORIENTATION.get(metric)
    if how is None:
        raise KeyError(f"no knowledge orientation for {metric!r}; known: {', '.join(sorted(KNOWLEDGE_ORIENTATION))}")
    return {"higher": value, "one_minus": 1.0 - value, "privleak": -value / 100.0}[how]


def faithfulness_auc(learned: ArrayLike, never_learned: ArrayLike) -> float | None:
    """P(m(learned) > m(never learned)), ties ½ (knowledge-oriented values); None when a pool is empty.

    Known answers: [0.9, 0.8] vs [0.1, 0.2] ⇒ 1; [0.5] vs [0.5] ⇒ 0.5; [0.1, 0.9] vs [0.5] ⇒ 0.5."""
    p = np.asarray(learned, dtype=np.float64).reshape(-1)
    n = np.asarray(never_learned, dtype=np.float64).reshape(-1)
    p, n = p[np.isfinite(p)], n[np.isfinite(n)]
    if p.size == 0 or n.size == 0:
        return None
    diff = p[:, None] - n[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def relearn_robustness(unl_before: float, unl_after: float, ret_before: float, ret_after: float) -> float | None:
    """R = min(Δ_ret / Δ_unl, 1) (knowledge-oriented values; see the module docstring for the edge cases).

    Known answers: Δ_unl = 0.4, Δ_ret = 0.2 ⇒ 0.5; Δ_unl = 0.1, Δ_ret = 0.3 ⇒ 1; Δ_unl = 0 ⇒ 1."""
    d_unl, d_ret = unl_after - unl_before, ret_after - ret_before
    if d_unl <= 0:
        return 1.0
    return float(min(max(d_ret / d_unl, 0.0), 1.0))


def relearn_robustness_symmetric(unl_before: float, unl_after: float, ret_before: float,
                                 ret_after: float) -> float:
    """R_sym = 1 − |Δ_unl − Δ_ret| / (|Δ_unl| + |Δ_ret|): 1 when both move alike, 0 when only one moves."""
    d_unl, d_ret = unl_after - unl_before, ret_after - ret_before
    denom = abs(d_unl) + abs(d_ret)
    return 1.0 if denom == 0 else 1.0 - abs(d_unl - d_ret) / denom


def quantisation_robustness(before: float, after: float) -> float | None:
    """Q = min(m_before / m_after, 1) (knowledge-oriented, both > 0; else None).

    Known answers: 0.2 → 0.4 ⇒ 0.5 (quantisation doubled the knowledge); 0.4 → 0.2 ⇒ 1."""
    if before <= 0 or after <= 0:
        return None
    return float(min(before / after, 1.0))


def quantisation_robustness_symmetric(before: float, after: float) -> float:
    """Q_sym = 1 − |m_after − m_before| / (|m_before| + |m_after|) (1 when both are 0).

    Known answer: 0.2 → 0.4 ⇒ 1 − 0.2/0.6 = 2/3."""
    denom = abs(before) + abs(after)
    return 1.0 if denom == 0 else 1.0 - abs(after - before) / denom


def harmonic_mean_of(values: Sequence[float | None]) -> float | None:
    """Harmonic mean; None if any value is None, 0 if any is ≤ 0."""
    if not values or any(v is None for v in values):
        return None
    v = np.asarray(values, dtype=np.float64)
    return 0.0 if (v <= 0).any() else float(v.size / np.sum(1.0 / v))


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def meta_evaluation_table(values: Mapping[tuple[str, str, int, str], float | None],
                          metrics: Sequence[str] | None = None) -> list[dict[str, float | str | int | None]]:
    """One row per metric from raw metric values keyed ``(model, condition, seed, metric)``: model "original" (the
    P pool), "retrain" (the N pool and the relearning reference) or "unlearned"; condition "before", "relearn",
    "int8" or "int4". Faithfulness over the seeds' Originals vs oracles (condition "before"); R, Q (int4 and int8)
    and their symmetric variants are means over seeds; robustness = HM(R, Q_int4) and overall = HM(faithfulness,
    robustness) (OpenUnlearning quantises to 4 bits), with the symmetric ones beside them. Missing values give None.
    """
    names = list(metrics) if metrics is not None else sorted({k[3] for k in values})
    seeds = sorted({k[2] for k in values})

    def k(model: str, cond: str, seed: int, metric: str) -> float | None:
        return knowledge(metric, values.get((model, cond, seed, metric)))

    rows: list[dict[str, float | str | int | None]] = []
    for m in names:
        p = [v for s in seeds if (v := k("original", "before", s, m)) is not None]
        n = [v for s in seeds if (v := k("retrain", "before", s, m)) is not None]
        r: list[float | None] = []
        q: list[float | None] = []
        q8: list[float | None] = []
        r_sym: list[float | None] = []
        q_sym: list[float | None] = []
        for s in seeds:
            ub, ua, rb, ra = (k(mod, c, s, m) for mod, c in (("unlearned", "before"), ("unlearned", "relearn"),
                                                              ("retrain", "before"), ("retrain", "relearn")))
            if None not in (ub, ua, rb, ra):
                r.append(relearn_robustness(ub, ua, rb, ra))  # type: ignore[arg-type]
                r_sym.append(relearn_robustness_symmetric(ub, ua, rb, ra))  # type: ignore[arg-type]
            q4, q8v = k("unlearned", "int4", s, m), k("unlearned", "int8", s, m)
            if ub is not None and q4 is not None:
                q.append(quantisation_robustness(ub, q4))
                q_sym.append(quantisation_robustness_symmetric(ub, q4))
            if ub is not None and q8v is not None:
                q8.append(quantisation_robustness(ub, q8v))
        faith = faithfulness_auc(p, n)
        rm, qm = _mean(r), _mean(q)
        rob = harmonic_mean_of([rm, qm])
        rob_sym = harmonic_mean_of([_mean(r_sym), _mean(q_sym)])
        rows.append({"metric": m, "n_learned": len(p), "n_never": len(n), "faithfulness_auc": faith,
                     "relearn_R": rm, "quant_int4_Q": qm, "quant_int8_Q": _mean(q8), "robustness": rob,
                     "overall": harmonic_mean_of([faith, rob]), "relearn_R_sym": _mean(r_sym),
                     "quant_int4_Q_sym": _mean(q_sym), "robustness_sym": rob_sym,
                     "overall_sym": harmonic_mean_of([faith, rob_sym])})
    return rows
