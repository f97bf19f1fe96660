"""NeurIPS 2023 Machine Unlearning Challenge forget score and final score (tier 2).

Triantafillou et al., "Are we making progress in unlearning? Findings from the first NeurIPS unlearning
competition", arXiv 2406.09073; google-deepmind/unlearning_evaluation ``metric.py``/``main.py``. The arithmetic is
:func:`expunge.metrics.functional.epsilon.epsilon_score`.

Pipeline (:func:`expunge.protocols.tier2.seeded_outputs`): the method runs N times from the run's original with
seeds ctx.seed + i (i = 0 is the run itself, found in the store), and N oracles are retrained with seeds
ctx.seed + i (i = 0 is the run's oracle); φ of every forget example under each model gives per-example ε and the
bucket score H(ε); forget_score = mean H; final = forget_score · (RA_U/RA_R) · (TA_U/TA_R), mean retain / test
accuracy of each group (uncapped, as main.py; the capped variant is in the details). Everything is cached, so N
retrains are reused by every method and N unlearning runs by every later evaluation of the same method.

Defaults N = 8 on CPU (``--models``); the challenge used N = 512, and any N < 512 is flagged ``reduced`` (and has
fewer buckets: B = 2·⌈ln(N − 1)⌉). A deterministic method gives N identical models, so every example is a point
mass (ε = 50, H = 0) — the metric needs a stochastic method, as in the challenge. Defined for the method's
distribution of models: only the unlearned role has a value.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from expunge.metrics import _tier2
from expunge.metrics._tier2 import Tier2Config
from expunge.metrics.base import EvalContext, MetricValue, register_metric
from expunge.metrics.functional.epsilon import epsilon_score

NEEDS = ("model_spec", "recipe", "store", "method", "original_key")


def neurips23_result(ctx: EvalContext) -> dict[str, Any]:
    out: _tier2.SeededOutputs = ctx.provided("seeded", Tier2Config.from_ctx(ctx), False)
    ra = _tier2.mean_ratio(out.unlearned_acc["retain"], out.oracle_acc["retain"])
    ta = _tier2.mean_ratio(out.unlearned_acc["test"], out.oracle_acc["test"])
    ratios = {} if ra is None or ta is None else {"ra_ratio": ra, "ta_ratio": ta}
    res = epsilon_score(out.unlearned_phi["forget"], out.oracle_phi["forget"], **ratios)
    return {**res, "ra_ratio": ra, "ta_ratio": ta, "seeds": out.seeds, "info": out.info,
            "ra_unlearned": out.unlearned_acc["retain"], "ra_retrain": out.oracle_acc["retain"],
            "ta_unlearned": out.unlearned_acc["test"], "ta_retrain": out.oracle_acc["test"]}


class _NeurIPS23(_tier2.Tier2Metric):
    family = "neurips23"
    run_needs = NEEDS
    higher_is_better = True
    key: ClassVar[str]

    unlearned_only, label = True, "NeurIPS'23 score"
    ideal = 1.0  # ε = 0 for every example (no test tells the groups apart) ⇒ H = 1; equal accuracies ⇒ ratios 1

    def result(self, ctx: EvalContext, role: str) -> dict[str, Any]:
        return neurips23_result(ctx)

    def value_from(self, res: dict[str, Any], ctx: EvalContext, role: str) -> MetricValue:
        value = res.get(self.key)
        reason = res.get("reason") or (None if value is not None else "no retain/test accuracy ratio")
        details = {k: _tier2.to_list(v) for k, v in res.items() if k not in ("bucket_scores",)}
        details["neurips23_epsilon"] = details.pop("epsilons")  # per-example ε (the metric's published name)
        se = None
        if value is not None and res.get("n_examples"):
            se = float(np.std(res["bucket_scores"]) / np.sqrt(res["n_examples"]))
            if self.key == "final_score" and res.get("score"):
                se *= float(value) / float(res["score"])
        return MetricValue(None if value is None else float(value), reason=reason, details=details, se=se)


@register_metric
class NeurIPS23ForgetScore(_NeurIPS23):
    name, key = "neurips23_forget_score", "score"
    definition = ("NeurIPS'23 challenge forget score: mean over forget examples of H(ε), ε the best (ε, δ=1e-5) "
                  "distinguisher of φ under N seeded unlearning runs vs N retrains; 1 = indistinguishable")


@register_metric
class NeurIPS23FinalScore(_NeurIPS23):
    name, key = "neurips23_final_score", "final_score"
    definition = "NeurIPS'23 final score: forget score · (RA_U/RA_R) · (TA_U/TA_R), ratios uncapped (main.py)"
