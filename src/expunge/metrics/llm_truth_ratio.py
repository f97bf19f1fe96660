"""Truth ratio on the forget, retain and world-facts sets, and TOFU's forget quality (tier 0).

TOFU (Maini et al., "TOFU: A Task of Fictitious Unlearning for LLMs", arXiv 2401.06121) as implemented by
OpenUnlearning ``src/evals/metrics/memorization.py:truth_ratio`` and ``privacy.py:ks_test``;
``../shared/spec/metrics.md`` §6.1–6.2. Per question, R = geomean_k P̄(ã_k) / P̄(â) = exp(ℓ̄(â) − mean_k ℓ̄(ã_k)):
ã_k the perturbed wrong answers, â the *paraphrased* correct answer on the forget and retain sets (TOFU's
``*_Q_A_PARA_Prob``) and the answer itself on the world facts (TOFU's ``wf_Q_A_Prob``: real-world sets have no
paraphrases in TOFU; we keep that choice so the numbers compare although our world facts have one).

* ``llm_truth_ratio_forget``: mean min(R, 1/R) — 1 when correct and wrong answers are equally likely (nothing to
  tell them apart), lower when the model prefers either; compare with the retain oracle.
* ``llm_truth_ratio_retain`` / ``llm_truth_ratio_world``: mean max(0, 1 − R) — higher when the correct answer is
  likelier than the wrong ones.
* ``llm_forget_quality``: p-value of ``scipy.stats.ks_2samp`` between the per-question forget truth ratios of the
  model and those of the retain oracle (same convention on both sides; the legacy 1/R gives the same p-value). The
  oracle against itself is exactly 1; higher is better (plot on a log scale). Items without perturbed answers (or
  without the correct answer used) are left out.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from expunge.metrics._llm_inputs import LLMMetric, answer_nlls, qa_set
from expunge.metrics.base import EvalContext, MetricValue, register_metric
from expunge.metrics.functional.llm_memorization import (
    forget_quality_pvalue,
    truth_ratio_forget_score,
    truth_ratio_retain_score,
    truth_ratios,
)

CORRECT = {"forget": "paraphrase", "retain": "paraphrase", "world": "answer"}


def per_item_truth_ratios(ctx: EvalContext, role: str, set_name: str) -> np.ndarray:
    """R of every item of the set that has perturbed answers and a correct answer of the kind the set uses."""
    correct = CORRECT[set_name]
    items = qa_set(ctx, set_name).items
    keep = [i for i, it in enumerate(items) if it.perturbed and getattr(it, correct)]
    if not keep:
        return np.zeros(0)
    c = np.asarray(answer_nlls(ctx, role, set_name, correct))[keep]
    wrong = answer_nlls(ctx, role, set_name, "perturbed")
    return truth_ratios(c, [wrong[i] for i in keep])


class _TruthRatio(LLMMetric):
    family = "llm_truth_ratio"
    set_name: ClassVar[str]

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        r = per_item_truth_ratios(ctx, role, self.set_name)
        if r.size == 0:
            return MetricValue(None, reason=f"no {self.set_name} questions with perturbed answers")
        score = truth_ratio_forget_score(r) if self.set_name == "forget" else truth_ratio_retain_score(r)
        per = np.minimum(r, 1 / r) if self.set_name == "forget" else np.maximum(0.0, 1 - r)
        se = float(per.std(ddof=1) / np.sqrt(per.size)) if per.size > 1 else None
        return MetricValue(score, se=se, details={"n": int(r.size), "median_ratio": float(np.median(r))})


@register_metric
class LLMTruthRatioForget(_TruthRatio):
    name, set_name = "llm_truth_ratio_forget", "forget"
    definition = ("forget set: mean min(R, 1/R), R = geomean P(perturbed) / P(paraphrased answer); compare with the "
                  "retain oracle")


@register_metric
class LLMTruthRatioRetain(_TruthRatio):
    name, set_name, higher_is_better = "llm_truth_ratio_retain", "retain", True
    definition = "retain set: mean max(0, 1 − R), R = geomean P(perturbed) / P(paraphrased answer)"


@register_metric
class LLMTruthRatioWorld(_TruthRatio):
    name, set_name, higher_is_better = "llm_truth_ratio_world", "world", True
    definition = "world facts: mean max(0, 1 − R), R = geomean P(perturbed) / P(answer)"


@register_metric
class LLMForgetQuality(LLMMetric):
    name, family, higher_is_better = "llm_forget_quality", "llm_truth_ratio", True
    needs = frozenset({"retrain"})
    definition = ("TOFU forget quality: KS-test p-value between the forget set's per-question truth ratios and the "
                  "retain oracle's (1 = indistinguishable)")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        mine = per_item_truth_ratios(ctx, role, "forget")
        ref = per_item_truth_ratios(ctx, "retrain", "forget")
        p = forget_quality_pvalue(mine, ref)
        if p is None:
            return MetricValue(None, reason="no forget questions with perturbed answers")
        return MetricValue(p, details={"n": int(mine.size), "log10_p": float(np.log10(max(p, 1e-300)))})
