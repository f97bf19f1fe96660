"""TOFU's model utility on the retain set and the world facts (tier 0).

Maini et al., arXiv 2401.06121, as OpenUnlearning ``src/evals/metrics/utility.py:hm_aggregate`` with
``configs/eval/tofu_metrics/model_utility.yaml``; ``../shared/spec/metrics.md`` §6.3: the harmonic mean of
{probability, ROUGE-L recall, truth-ratio score} on each utility set. TOFU has three sets (retain, real authors, world
facts: nine values); the facts benchmark has no real-authors set, so ``llm_model_utility`` is the harmonic mean of
six: ``llm_prob_retain``, ``llm_rouge_retain``, ``llm_truth_ratio_retain``, ``llm_prob_world`` (normalised over the
perturbed answers), ``llm_rouge_world``, ``llm_truth_ratio_world``. Any component 0 ⇒ 0; a component that cannot be
computed (no world facts) makes the utility None with its reason.
"""

from __future__ import annotations

from expunge.metrics._llm_inputs import LLMMetric
from expunge.metrics.base import EvalContext, MetricValue, register_metric
from expunge.metrics.functional.llm_memorization import harmonic_mean_utility
from expunge.metrics.llm_probability import LLMProbRetain, LLMProbWorld
from expunge.metrics.llm_rouge import LLMRougeRetain, LLMRougeWorld
from expunge.metrics.llm_truth_ratio import LLMTruthRatioRetain, LLMTruthRatioWorld

COMPONENTS = (LLMProbRetain, LLMRougeRetain, LLMTruthRatioRetain, LLMProbWorld, LLMRougeWorld, LLMTruthRatioWorld)


@register_metric
class LLMModelUtility(LLMMetric):
    name, family, higher_is_better = "llm_model_utility", "llm_utility", True
    definition = ("harmonic mean of probability, ROUGE-L recall and truth-ratio score on the retain set and the world "
                  "facts (TOFU model utility; any component 0 gives 0)")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        parts: dict[str, float] = {}
        for cls in COMPONENTS:
            v = cls().compute(ctx, role)
            if v.value is None:
                return MetricValue(None, reason=f"{cls.name}: {v.reason}", details=parts)
            parts[cls.name] = float(v.value)
        return MetricValue(harmonic_mean_utility(list(parts.values())), details=parts)
