"""ROUGE-L recall of greedy answers on the forget, retain and world-facts sets (tier 0).

TOFU (Maini et al., arXiv 2401.06121) and OpenUnlearning ``src/evals/metrics/utils.py:eval_text_similarity``
(``rougeL_recall``); ``../shared/spec/metrics.md`` §6.4: the model answers each question greedily (through its
``generate_greedy``, so an inference-time guard that overrides it is what is measured), and the answer is scored with
``rouge_score.RougeScorer(['rougeL'], use_stemmer=True)`` against the reference answer: recall = LCS / |reference|.

Choices: at most |reference tokens| + 4 new tokens (OpenUnlearning's default is 200; our answers are short and stop at
end-of-sequence, and recall cannot rise after the reference's length has been generated unless the model first
rambled); the paraphrase and perturbed answers are not used. Forget: closer to the retain oracle is better;
retain / world: higher is better.
"""

from __future__ import annotations

from typing import ClassVar

from expunge.metrics._llm_inputs import LLMMetric, generations, qa_set, value_with_se
from expunge.metrics.base import EvalContext, MetricValue, register_metric
from expunge.metrics.functional.llm_memorization import rouge_l_recall


class _RougeRecall(LLMMetric):
    family = "llm_rouge"
    set_name: ClassVar[str]

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        items = qa_set(ctx, self.set_name).items
        if not items:
            return MetricValue(None, reason=f"no {self.set_name} questions")
        gens = generations(ctx, role, self.set_name)
        return value_with_se([rouge_l_recall(g, it.answer) for g, it in zip(gens, items, strict=True)])


@register_metric
class LLMRougeForget(_RougeRecall):
    name, set_name = "llm_rouge_forget", "forget"
    definition = ("mean ROUGE-L recall of the greedy answers to the forget set's questions (rouge_score, stemmer on); "
                  "compare with the retain oracle")


@register_metric
class LLMRougeRetain(_RougeRecall):
    name, set_name, higher_is_better = "llm_rouge_retain", "retain", True
    definition = "mean ROUGE-L recall of the greedy answers to the retain set's questions"


@register_metric
class LLMRougeWorld(_RougeRecall):
    name, set_name, higher_is_better = "llm_rouge_world", "world", True
    definition = "mean ROUGE-L recall of the greedy answers to the world-facts questions"
