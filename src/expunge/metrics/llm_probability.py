"""Answer probability of a language model on the forget, retain and world-facts sets (tier 0).

OpenUnlearning ``src/evals/metrics/memorization.py`` (``probability``, ``probability_w_options``) and TOFU (Maini et
al., arXiv 2401.06121); ``../shared/spec/metrics.md`` §6.3:

* ``llm_prob_forget`` / ``llm_prob_retain``: mean over the set's questions of P̄(a|q) = exp(−ℓ̄), ℓ̄ the mean NLL of
  the answer tokens (and the end-of-sequence token) given the question. Forget: closer to the retain oracle is
  better; retain: higher is better.
* ``llm_prob_world``: mean of P̄(a) / (P̄(a) + Σ_k P̄(ã_k)) over the world facts, ã_k their perturbed (wrong) answers —
  the normalised probability TOFU uses for the real-world sets, where answers are short and raw probabilities of
  different facts are not comparable.

Standard errors are s/√n over the set's items for the fixed model.
"""

from __future__ import annotations

from typing import ClassVar

from expunge.metrics._llm_inputs import LLMMetric, answer_nlls, value_with_se
from expunge.metrics.base import EvalContext, MetricValue, register_metric
from expunge.metrics.functional.llm_memorization import normalised_probability, probability_from_nll


class _AnswerProbability(LLMMetric):
    family = "llm_probability"
    set_name: ClassVar[str]

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        return value_with_se(probability_from_nll(answer_nlls(ctx, role, self.set_name, "answer")))


@register_metric
class LLMProbForget(_AnswerProbability):
    name, set_name = "llm_prob_forget", "forget"
    definition = ("mean exp(−mean answer-token NLL) of the forget set's answers given their questions; compare with "
                  "the retain oracle")


@register_metric
class LLMProbRetain(_AnswerProbability):
    name, set_name, higher_is_better = "llm_prob_retain", "retain", True
    definition = "mean exp(−mean answer-token NLL) of the retain set's answers given their questions"


@register_metric
class LLMProbWorld(LLMMetric):
    name, family, higher_is_better = "llm_prob_world", "llm_probability", True
    definition = ("mean P(a)/(P(a) + Σ_k P(ã_k)) over the world facts, P = exp(−mean answer-token NLL), ã_k the "
                  "perturbed wrong answers")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        correct = answer_nlls(ctx, role, "world", "answer")
        if len(correct) == 0:
            return MetricValue(None, reason="no world facts in the retain set")
        return value_with_se(normalised_probability(correct, answer_nlls(ctx, role, "world", "perturbed")))
