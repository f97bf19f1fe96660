"""U-LiRA, the per-example unlearning membership-inference attack (tier 2).

Hayes, Shumailov, Triantafillou, Khalifa, Papernot, "Inexact unlearning needs more careful evaluations to avoid a
false sense of privacy", arXiv 2403.01218 (SaTML 2025). Gaussian likelihood ratio of Carlini et al., S&P 2022
(tensorflow/privacy ``research/mi_lira_2021``); the arithmetic is :func:`expunge.metrics.functional.lira.ulira`.

Pipeline (:func:`expunge.metrics._tier2.ulira_inputs`):

1. K shadows, each trained with the original's recipe on a random half of the pool = training set ∪ test set
   (:class:`expunge.shadows.ShadowSet`; each pool example is IN for exactly K/2 shadows). Shadows do not depend on
   the request or the method, so they are reused by every method and request on the same data, model spec and recipe.
2. Targets: the run's forget set F, and held-out test examples H matched to F's classes (as many per class as F
   has, when the test split has them; they were never trained on by the target).
3. In each shadow, the target examples it trained on (its IN ∩ (F ∪ H): a random subset of its IN data, and every
   target is in it for exactly K/2 shadows) are unlearned with the method under test and the run's hyperparameters
   (``expunge.unlearn.run_method``, the shadow as the original, a seed per shadow). Cached per method + params.
4. For every target x: IN_u = φ(x) under the unlearned shadows that trained on x, OUT = φ(x) under the unlearned
   shadows that never saw it; queried as the models were trained (identity; the horizontal flip too only when the
   recipe augments with flips, which expunge's recipes do not). Gaussian fits with one global σ per
   group when K < 64; score = log N(φ_t; IN_u) − log N(φ_t; OUT), forget = positive, held-out = negative.

Values: ``ulira_balanced_acc`` (ideal 0.5), ``ulira_auc`` (ideal 0.5), ``ulira_tpr_at_1pct_fpr`` and
``ulira_tpr_at_0.1pct_fpr`` (ideal = the FPR). Computed for every role present: the Retrain row is the value of an
exact unlearner, the Original row that of doing nothing. Defaults K = 16 on CPU (``--shadows``); the paper uses
K = 64 (128/256 for publication). With few held-out targets, TPR at 0.1% FPR is TPR at FPR = 0 (see details).

``ulira_retain_auc`` is the paper's "retain-set MIA before/after" (the privacy onion of Carlini, Jagielski, Zhang,
Papernot, Terzis, Tramèr, "The Privacy Onion Effect", NeurIPS 2022: removing examples can expose the ones that stay).
Online LiRA on a seeded sample of *retained* training examples vs class-matched held-out examples, calibrated on
the same K shadows before any unlearning (:func:`expunge.protocols.tier2.onion_inputs`; our choice: one calibration
for every role, so the Original row is "before", the unlearned row "after" and their difference is what unlearning
did). Needs no method runs: the shadows are shared with U-LiRA.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from expunge.metrics import _tier2
from expunge.metrics._common import phi
from expunge.metrics._tier2 import Tier2Config
from expunge.metrics.base import EvalContext, MetricValue, register_metric
from expunge.metrics.functional.lira import ulira
from expunge.metrics.functional.stats import auc_se, proportion_se

NEEDS = ("model_spec", "recipe", "store", "method")


def likelihood_ratio(ctx: EvalContext, role: str, train_pos: np.ndarray, heldout_pos: np.ndarray,
                     shadow_a: np.ndarray, shadow_out: np.ndarray, inputs: Any) -> dict[str, Any]:
    """The ``role`` model's φ on training targets (positions in dataset.train) and held-out targets (positions in
    dataset.test), scored against shadow group A (unlearned, or IN) vs OUT: U-LiRA and the privacy onion alike."""
    tr, te, model = ctx.dataset.train, ctx.dataset.test, ctx.models[role]
    t_a = phi(model, tr.x[train_pos], tr.y[train_pos], inputs.queries)
    t_h = phi(model, te.x[heldout_pos], te.y[heldout_pos], inputs.queries)
    return ulira(t_a, t_h, shadow_a, shadow_out) | {"info": inputs.info, "queries": inputs.queries}


def ulira_result(ctx: EvalContext, role: str) -> dict[str, Any]:
    """U-LiRA of the model in ``role`` (the shadow pipeline runs once per context)."""
    inputs: _tier2.ULiraInputs = ctx.provided("ulira", Tier2Config.from_ctx(ctx))
    return likelihood_ratio(ctx, role, inputs.forget_pos, inputs.heldout_pos, inputs.shadow_unlearned,
                            inputs.shadow_out, inputs)


class _ULira(_tier2.Tier2Metric):
    family = "ulira"
    run_needs = NEEDS
    higher_is_better = None  # ideal 0.5 (chance); read beside the Retrain row, the value of an exact unlearner
    key: ClassVar[str]

    label = "U-LiRA"

    def result(self, ctx: EvalContext, role: str) -> dict[str, Any]:
        return ulira_result(ctx, role)

    def value_from(self, res: dict[str, Any], ctx: EvalContext, role: str) -> MetricValue:
        value = res.get(self.key)
        scores, is_forget = np.asarray(res["scores"]), np.asarray(res["is_forget"], dtype=bool)
        n_pos, n_neg = int(res["n_members"]), int(res["n_nonmembers"])
        se = None
        if value is not None:
            se = auc_se(float(value), n_pos, n_neg) if self.key == "auc" else proportion_se(
                float(value), n_pos if self.key.startswith("tpr") else n_pos + n_neg)
        details = {k: res[k] for k in ("auc", "balanced_acc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "n_shadows",
                                       "variance", "n_forget", "n_heldout", "n_dropped", "queries", "info")}
        forget_scores = scores[is_forget]
        details["forget_vulnerability"] = {  # per-example distribution of the attack score on the forget set
            "scores": forget_scores.tolist(),
            "quantiles": dict(zip(("p05", "p50", "p95"), np.quantile(forget_scores, [0.05, 0.5, 0.95]).tolist(),
                                  strict=True)) if forget_scores.size else {}}
        details["method"] = ctx.run.method
        return MetricValue(None if value is None else float(value), reason=res.get("reason"), details=details, se=se)


def onion_result(ctx: EvalContext, role: str) -> dict[str, Any]:
    """Retain-set LiRA of the model in ``role`` (calibration memoised per context)."""
    inputs: _tier2.OnionInputs = ctx.provided("onion", Tier2Config.from_ctx(ctx))
    return likelihood_ratio(ctx, role, inputs.retain_pos, inputs.heldout_pos, inputs.shadow_in, inputs.shadow_out,
                            inputs)


@register_metric
class ULiraRetainAuc(_tier2.Tier2Metric):
    name, family, label = "ulira_retain_auc", "ulira", "privacy onion"
    run_needs = ("model_spec", "recipe", "store")
    higher_is_better = False  # lower = retained examples less exposed; compare with the Original row
    definition = ("Privacy onion (retain-set MIA before/after): online-LiRA AUC of retained training examples vs "
                  "class-matched held-out ones, calibrated on the plain shadows; unlearned above Original = "
                  "unlearning exposed data it kept")

    def result(self, ctx: EvalContext, role: str) -> dict[str, Any]:
        return onion_result(ctx, role)

    def value_from(self, res: dict[str, Any], ctx: EvalContext, role: str) -> MetricValue:
        value = res.get("auc")
        n_pos, n_neg = int(res["n_forget"]), int(res["n_heldout"])
        details = {"auc": value, "balanced_acc": res.get("balanced_acc"), "tpr_at_1pct_fpr": res.get("tpr_at_1pct_fpr"),
                   "n_retained_targets": n_pos, "n_heldout": n_neg, "n_dropped": res["n_dropped"],
                   "n_shadows": res["n_shadows"], "variance": res["variance"], "queries": res["queries"],
                   "info": res["info"]}
        se = None if value is None else auc_se(float(value), n_pos, n_neg)
        return MetricValue(None if value is None else float(value), reason=res.get("reason"), details=details, se=se)


@register_metric
class ULiraAuc(_ULira):
    name, key = "ulira_auc", "auc"
    definition = ("U-LiRA (Hayes et al. 2024) ROC-AUC: per-example Gaussian likelihood ratio, shadows that trained "
                  "then unlearned x (same method) vs shadows that never saw it; forget vs held-out; ideal 0.5")


@register_metric
class ULiraBalancedAcc(_ULira):
    name, key = "ulira_balanced_acc", "balanced_acc"
    definition = "U-LiRA best balanced accuracy max_t 1 − (FPR + FNR)/2, forget vs held-out; ideal 0.5"


@register_metric
class ULiraTpr1(_ULira):
    name, key = "ulira_tpr_at_1pct_fpr", "tpr_at_1pct_fpr"
    definition = "U-LiRA TPR at FPR ≤ 1% (forget examples flagged as unlearned members); ideal ≈ 0.01"


@register_metric
class ULiraTpr01(_ULira):
    name, key = "ulira_tpr_at_0.1pct_fpr", "tpr_at_0.1pct_fpr"
    definition = "U-LiRA TPR at FPR ≤ 0.1%; with fewer than 1000 held-out targets this is TPR at FPR = 0"
