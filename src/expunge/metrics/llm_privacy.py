"""Membership attacks on a language model's forget set, and MUSE's PrivLeak (tier 0).

Forget rows (every stored row of the forget split: the forgotten people's questions and biographies) are members,
the held-out people's rows (the test split: never trained on, same generator) non-members. Attack statistics
(:mod:`expunge.metrics.functional.llm_privacy`, OpenUnlearning ``src/evals/metrics/mia/``): LOSS, zlib, Min-K% and
Min-K%++ with k = 0.4, all member-high; the AUC is P(s(forget) > s(held-out)) (ties ½), OpenUnlearning's
orientation: the Original, which trained on the forget rows, scores high; the retain oracle ≈ 0.5 up to how much
the forget people resemble the others. Every AUC compares with the retain oracle's (closer is better).

``llm_privleak`` (Shi et al., "MUSE", arXiv 2407.06460; OpenUnlearning ``privacy.py:privleak``): ((1 − AUC_U) −
(1 − AUC_R)) / (1 − AUC_R) × 100 with the Min-K% (k = 0.4) AUCs of the model and of the retain oracle — ≈ 0 ideal,
negative = under-unlearning (the Original ≈ −100), positive = over-unlearning. This is the issue's formula and
MUSE's published sign; ``../shared/spec/metrics.md`` §6.6 writes the same with MUSE's non-member-high AUC (see the
functional module). When the oracle's AUC is 1 the value is None (no scale), never OpenUnlearning's silent 0.5
reference. Standard errors of the AUCs: Hanley & McNeil.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from expunge.metrics._llm_inputs import LLMMetric, RowStats, corpus_of, row_stats
from expunge.metrics.base import EvalContext, MetricValue, register_metric
from expunge.metrics.functional.llm_privacy import (
    MIN_K_FRACTION,
    loss_attack_score,
    min_k_plus_plus_score,
    min_k_score,
    privleak,
    zlib_attack_score,
)
from expunge.metrics.functional.mia import mia_auc
from expunge.metrics.functional.stats import auc_se


def _texts(ctx: EvalContext, split: str, stats: RowStats) -> list[str]:
    tok = corpus_of(ctx).tokenizer
    return ctx.cached(("llm_answer_texts", split), lambda: [tok.decode(y.tolist()) for y in stats.labels])


def attack_scores(ctx: EvalContext, role: str, split: str, attack: str) -> np.ndarray:
    """Member-high scores of ``attack`` ("loss", "zlib", "mink", "minkpp") on the stored ``split`` rows; rows without
    a scored token are NaN."""
    s = row_stats(ctx, role, split)
    if attack == "loss":
        return loss_attack_score(s.mean_nll)
    if attack == "zlib":
        return np.array([zlib_attack_score(n, t) for n, t in zip(s.mean_nll, _texts(ctx, split, s), strict=True)])
    if attack == "mink":
        return np.array([min_k_score(lp, MIN_K_FRACTION) for lp in s.logprobs])
    if attack == "minkpp":
        return np.array([min_k_plus_plus_score(lp, mu, s2, MIN_K_FRACTION)
                         for lp, mu, s2 in zip(s.logprobs, s.mu, s.sigma2, strict=True)])
    raise ValueError(f"unknown attack {attack!r}")


def attack_auc(ctx: EvalContext, role: str, attack: str) -> MetricValue:
    """AUC of ``attack`` separating the forget rows (members) from the held-out rows."""
    f, h = attack_scores(ctx, role, "forget", attack), attack_scores(ctx, role, "test", attack)
    f, h = f[np.isfinite(f)], h[np.isfinite(h)]
    auc = mia_auc(f, h)
    if auc is None:
        return MetricValue(None, reason="no forget or no held-out rows with scored answer tokens")
    return MetricValue(auc, se=auc_se(auc, len(f), len(h)), details={"n_forget": len(f), "n_holdout": len(h)})


class _AttackAUC(LLMMetric):
    family = "llm_mia"
    attack: ClassVar[str]

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        return attack_auc(ctx, role, self.attack)


@register_metric
class LLMMiaLossAUC(_AttackAUC):
    name, attack = "llm_mia_loss_auc", "loss"
    definition = ("AUC of the LOSS attack (−mean answer NLL) separating forget rows from held-out people's rows; "
                  "compare with the retain oracle")


@register_metric
class LLMMiaZlibAUC(_AttackAUC):
    name, attack = "llm_mia_zlib_auc", "zlib"
    definition = ("AUC of the zlib attack (−mean answer NLL / zlib-compressed answer bytes), forget vs held-out rows; "
                  "compare with the retain oracle")


@register_metric
class LLMMiaMinKAUC(_AttackAUC):
    name, attack = "llm_mia_mink_auc", "mink"
    definition = ("AUC of the Min-K% Prob attack (k = 0.4), forget vs held-out rows; compare with the retain oracle")


@register_metric
class LLMMiaMinKPlusPlusAUC(_AttackAUC):
    name, attack = "llm_mia_minkpp_auc", "minkpp"
    definition = ("AUC of the Min-K%++ attack (k = 0.4, log-probabilities standardised by the next-token "
                  "distribution), forget vs held-out rows; compare with the retain oracle")


@register_metric
class LLMPrivLeak(LLMMetric):
    name, family = "llm_privleak", "llm_mia"
    needs = frozenset({"retrain"})
    definition = ("MUSE PrivLeak: ((1 − AUC) − (1 − AUC_retrain)) / (1 − AUC_retrain) × 100 of the Min-K% (k = 0.4) "
                  "forget-vs-held-out AUC; 0 ideal, negative = under-unlearning")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        mine, ref = attack_auc(ctx, role, "mink"), attack_auc(ctx, "retrain", "mink")
        if mine.value is None or ref.value is None:
            return MetricValue(None, reason=mine.reason or ref.reason)
        value = privleak(mine.value, ref.value)
        details = {"auc": mine.value, "auc_retrain": ref.value}
        if value is None:
            return MetricValue(None, reason="the retain oracle's Min-K% AUC is 1: PrivLeak has no scale",
                               details=details)
        return MetricValue(value, details=details)
