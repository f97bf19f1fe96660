"""Exact memorisation and extraction strength of a language model on its forget set (tier 0).

OpenUnlearning ``src/evals/metrics/memorization.py`` (``exact_memorization``, ``extraction_strength``), on every
stored forget row (questions' answers and biographies), over the labelled tokens but the final end-of-sequence token
(``tokenwise_vocab_logprobs``), teacher-forced:

* ``llm_exact_memorization`` (Tirumala et al., "Memorization Without Overfitting", arXiv 2205.10770): mean over rows
  of the share of answer tokens whose argmax prediction is the true token.
* ``llm_extraction_strength`` (Carlini et al. 2021; Wang et al., "Towards Effective Evaluations and Comparisons for
  LLM Unlearning Methods", arXiv 2406.09179): mean over rows of 1 − k/n, k the shortest true prefix after which the
  model's greedy predictions reproduce the rest of the answer (0 when not even the last token is reproduced; see
  :func:`~expunge.metrics.functional.llm_memorization.extraction_strength_score` for OpenUnlearning's 1/n there).

Both: the Original ≈ 1 after memorising; compare with the retain oracle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from expunge.metrics._llm_inputs import LLMMetric, row_stats, value_with_se
from expunge.metrics.base import EvalContext, MetricValue, register_metric
from expunge.metrics.functional.llm_memorization import exact_memorization_score, extraction_strength_score


class _ForgetTokens(LLMMetric):
    family = "llm_memorization"
    score: ClassVar[Callable[..., float | None]]

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        s = row_stats(ctx, role, "forget")
        values = [type(self).score(p, y) for p, y in zip(s.preds, s.labels, strict=True)]
        return value_with_se([v for v in values if v is not None])


@register_metric
class LLMExactMemorization(_ForgetTokens):
    name, score = "llm_exact_memorization", exact_memorization_score
    definition = ("mean share of forget answer tokens the model predicts exactly (teacher-forced argmax); compare "
                  "with the retain oracle")


@register_metric
class LLMExtractionStrength(_ForgetTokens):
    name, score = "llm_extraction_strength", extraction_strength_score
    definition = ("mean 1 − k/n over forget rows, k the shortest answer prefix after which greedy predictions "
                  "reproduce the rest; compare with the retain oracle")
