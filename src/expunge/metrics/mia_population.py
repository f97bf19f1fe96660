"""Population membership-inference attacks beyond the loss-LR attack of :mod:`expunge.metrics.mia` (tier 0).

Every value is reported for the unlearned model, the Original and the Retrain; the target is the Retrain's value, not
0.5. Features come from cached logits; attacker subsampling uses the evaluation seed.
The attacks whose only feature is the loss (``mufac_forgetting_score``, ``indiscernibility``, the two threshold
attacks) use the task's per-example loss and are defined for classification and regression (squared error; Tarun et
al., "Deep Regression Unlearning", ICML 2023, attack regression models through their loss); the others read class
probabilities and are classification-only.

* ``mufac_forgetting_score`` = |acc − 0.5|, ``indiscernibility`` = 1 − |acc − 0.5|/0.5 and
  ``nomus`` = (acc_test + 1 − 2·|acc − 0.5|)/2, with acc the cross-validated accuracy of the loss-LR attack forget vs
  test (the same attack as ``mia_loss_acc``; MUFAC: ndb796/MachineUnlearning; DeepUnlearn, arXiv 2410.01276:
  xcadet/deepunlearn).
* ``mia_eff_svc_conf_salun`` — SalUn MIA-Efficacy in [0, 1] (×100 in SalUn tables): ``SVC(C=3, gamma='auto')`` on the
  true-class confidence p_y, retain (member) vs test (non-member), share of the forget set predicted *non*-member
  (Fan et al., SalUn, ICLR 2024, arXiv 2310.12508; OPTML-Group/Unlearn-Saliency ``evaluation/SVC_MIA.py``).
* ``mia_entropy_svc_retain_vs_test_badteacher`` / ``mia_entropy_lr_retain_vs_test_ssd`` — prediction entropy, attacker
  fit on retain (1) vs test (0), share of the forget set predicted member (Bad Teacher SVC:
  vikram2000b/bad-teaching-unlearning ``metrics.py``; SSD/JiT LR: if-loops/selective-synaptic-dampening
  ``src/metrics.py``).
* ``mia_loss_threshold_best`` — best-threshold attack on −loss, balanced accuracy max_τ 1 − (FPR + FNR)/2 on balanced
  forget vs test; τ is fit on the evaluated sets, so the value is optimistic (labelled in ``details``) (Song & Mittal,
  USENIX Security 2021, arXiv 2003.10595).
* ``mia_loss_threshold_yeom`` — Yeom et al. (CSF 2018, arXiv 1709.01604): member iff loss ≤ mean retain-set loss of the
  same model; balanced accuracy forget vs test.

Deviation for cost: SVC attackers train on at most ``SVC_MAX_PER_SIDE`` = 1000 examples per side (seeded subsample
before balancing). An RBF SVC is quadratic in n (≈ 40 s at 10 000 per side on 2 busy cores), which would make tier 0
minutes long on Fashion-MNIST; on a one-dimensional feature 1000 points per side pin the decision regions down.
Pitfall inherited from the references: for class requests the forget and test sets differ in distribution, so the
forget-vs-test attacks also detect the class; compare with the Retrain.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np

from expunge.metrics._common import single_threaded
from expunge.metrics.base import EvalContext, Metric, MetricValue, register_metric
from expunge.metrics.functional.accuracy import accuracy
from expunge.metrics.functional.mia import (
    confidence,
    entropy,
    entropy_mia,
    indiscernibility,
    loss_lr_cv,
    mia_efficacy_svc_salun,
    mufac_forgetting_score,
    nomus,
    threshold_attack_best,
    threshold_attack_yeom,
)
from expunge.metrics.functional.stats import auc_se, proportion_se

SVC_MAX_PER_SIDE = 1000


def _cap(a: np.ndarray, n_max: int, seed: int, salt: int) -> np.ndarray:
    """At most ``n_max`` rows of ``a`` (seeded sample without replacement, original order kept)."""
    if len(a) <= n_max:
        return a
    rng = np.random.default_rng([seed, salt])
    return a[np.sort(rng.choice(len(a), size=n_max, replace=False))]


LOSS_TASKS = frozenset({"classification", "regression"})  # attacks whose only feature is the task's loss


def _loss(ctx: EvalContext, role: str, split: str) -> np.ndarray:
    """The task's per-example loss (classification: cross-entropy clipped to [0, 100]; regression: squared error)."""
    return ctx.task.example_losses(ctx.logits(role, split), ctx.labels(split))


# -------------------------------------------------------------------------- loss-LR derived scores (MUFAC, DeepUnlearn)
def loss_lr_result(ctx: EvalContext, role: str) -> dict[str, Any]:
    """The loss-LR cross-validated attack (forget vs test) for ``role``, computed once per model."""
    def compute() -> dict[str, Any]:
        with single_threaded():
            return loss_lr_cv(_loss(ctx, role, "forget"), _loss(ctx, role, "test"), seed=ctx.seed)

    return ctx.cached(("loss_lr_cv",), compute, role=role)


class _LossLRDerived(Metric):
    family = "mia_population"

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        res = loss_lr_result(ctx, role)
        acc = res.get("acc")
        if acc is None:
            return MetricValue(None, reason=res.get("reason") or "loss-LR attack undefined")
        se_acc = proportion_se(float(acc), 2 * int(res["n_per_side"]))
        return self.derive(ctx, role, float(acc), se_acc, {"attack_acc": float(acc), "seed": ctx.seed})

    def derive(self, ctx: EvalContext, role: str, acc: float, se_acc: float | None,
               details: dict[str, Any]) -> MetricValue:
        raise NotImplementedError


@register_metric
class MufacForgettingScore(_LossLRDerived):
    tasks = LOSS_TASKS
    name, higher_is_better = "mufac_forgetting_score", False
    definition = "|acc - 0.5| of the loss-LR CV attack forget vs test (MUFAC 'MIA' row); compare with retrain"

    def derive(self, ctx: EvalContext, role: str, acc: float, se_acc: float | None,
               details: dict[str, Any]) -> MetricValue:
        return MetricValue(mufac_forgetting_score(acc), se=se_acc, details=details)


@register_metric
class Indiscernibility(_LossLRDerived):
    tasks = LOSS_TASKS
    name, higher_is_better = "indiscernibility", True
    definition = "1 - |acc - 0.5|/0.5 of the loss-LR CV attack forget vs test (DeepUnlearn); compare with retrain"

    def derive(self, ctx: EvalContext, role: str, acc: float, se_acc: float | None,
               details: dict[str, Any]) -> MetricValue:
        return MetricValue(indiscernibility(acc), se=None if se_acc is None else 2 * se_acc, details=details)


@register_metric
class NoMUS(_LossLRDerived):
    name, higher_is_better = "nomus", True
    definition = "NoMUS = (test acc + 1 - 2|acc - 0.5|)/2, acc of the loss-LR CV attack forget vs test (MUFAC)"

    def derive(self, ctx: EvalContext, role: str, acc: float, se_acc: float | None,
               details: dict[str, Any]) -> MetricValue:
        acc_test = accuracy(ctx.logits(role, "test"), ctx.labels("test"))
        if acc_test is None:
            return MetricValue(None, reason="empty test split")
        se_test = proportion_se(acc_test, len(ctx.labels("test")))
        se = None if se_acc is None or se_test is None else math.sqrt(se_test**2 + 4 * se_acc**2) / 2
        return MetricValue(nomus(acc_test, acc), se=se, details={**details, "acc_test": acc_test})


# --------------------------------------------------------------------------------- SalUn MIA-Efficacy (Fan et al. 2024)
def mia_eff_svc_conf(ctx: EvalContext, role: str) -> MetricValue:
    """SalUn MIA-Efficacy of ``role`` in [0, 1], computed once per model (``avg_gap_salun`` reuses it)."""

    def compute() -> MetricValue:
        seed = ctx.seed
        retain = _cap(confidence(ctx.logits(role, "retain"), ctx.labels("retain")), SVC_MAX_PER_SIDE, seed, 1)
        test = _cap(confidence(ctx.logits(role, "test"), ctx.labels("test")), SVC_MAX_PER_SIDE, seed, 2)
        forget = confidence(ctx.logits(role, "forget"), ctx.labels("forget"))
        with single_threaded():
            v = mia_efficacy_svc_salun(retain, test, forget, seed=seed)
        if v is None:
            return MetricValue(None, reason="attacker sets too small (< 20 per side) or empty forget set")
        return MetricValue(v, se=proportion_se(v, len(forget)),
                           details={"n_per_side": min(len(retain), len(test)), "n_forget": len(forget), "seed": seed})

    return ctx.cached(("mia_eff_svc_conf",), compute, role=role)


@register_metric
class MiaEffSvcConfSalun(Metric):
    name, family = "mia_eff_svc_conf_salun", "mia_population"
    definition = ("SalUn MIA-Efficacy in [0,1]: SVC on true-class confidence, retain vs test; share of forget "
                  "predicted non-member; compare with retrain")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        return mia_eff_svc_conf(ctx, role)


# ----------------------------------------------------------------------------------- entropy attacks (Bad Teacher, SSD)
class _EntropyMia(Metric):
    family = "mia_population"
    classifier: ClassVar[Literal["svc", "lr"]]

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        seed = ctx.seed
        n_max = SVC_MAX_PER_SIDE if self.classifier == "svc" else None
        retain, test = entropy(ctx.logits(role, "retain")), entropy(ctx.logits(role, "test"))
        if n_max is not None:
            retain, test = _cap(retain, n_max, seed, 3), _cap(test, n_max, seed, 4)
        forget = entropy(ctx.logits(role, "forget"))
        with single_threaded():
            v = entropy_mia(retain, test, forget, classifier=self.classifier, seed=seed)
        if v is None:
            return MetricValue(None, reason="attacker sets too small (< 20 per side) or empty forget set")
        return MetricValue(v, se=proportion_se(v, len(forget)),
                           details={"n_per_side": min(len(retain), len(test)), "n_forget": len(forget), "seed": seed})


@register_metric
class MiaEntropySvcBadTeacher(_EntropyMia):
    name, classifier = "mia_entropy_svc_retain_vs_test_badteacher", "svc"
    definition = ("share of forget predicted member by an SVC on prediction entropy fit on retain vs test "
                  "(Bad Teacher); compare with retrain")


@register_metric
class MiaEntropyLrSsd(_EntropyMia):
    name, classifier = "mia_entropy_lr_retain_vs_test_ssd", "lr"
    definition = ("share of forget predicted member by a balanced logistic regression on prediction entropy fit on "
                  "retain vs test (SSD/JiT); compare with retrain")


# ------------------------------------------------------------------------------ threshold attacks (Yeom; Song & Mittal)
@register_metric
class MiaLossThresholdBest(Metric):
    tasks = LOSS_TASKS
    name, family = "mia_loss_threshold_best", "mia_population"
    definition = ("balanced accuracy of the best loss threshold, forget vs test, balanced (optimistic: threshold "
                  "fit on the evaluated sets); compare with retrain")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        res = threshold_attack_best(-_loss(ctx, role, "forget"), -_loss(ctx, role, "test"), seed=ctx.seed)
        if res["balanced_acc"] is None:
            return MetricValue(None, reason=res["reason"])
        n = int(res["n_per_side"])
        details = {k: res[k] for k in ("auc", "threshold", "n_per_side", "seed", "optimistic")}
        details["auc_se"] = auc_se(res["auc"], n, n) if res["auc"] is not None else None
        return MetricValue(res["balanced_acc"], se=proportion_se(res["balanced_acc"], 2 * n), details=details)


@register_metric
class MiaLossThresholdYeom(Metric):
    tasks = LOSS_TASKS
    name, family = "mia_loss_threshold_yeom", "mia_population"
    definition = ("Yeom attack accuracy: member iff loss <= the model's mean retain loss; forget vs test, "
                  "balanced; compare with retrain")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        retain = _loss(ctx, role, "retain")
        if len(retain) == 0:
            return MetricValue(None, reason="empty retain split")
        res = threshold_attack_yeom(_loss(ctx, role, "forget"), _loss(ctx, role, "test"), float(retain.mean()),
                                    seed=ctx.seed)
        if res["acc"] is None:
            return MetricValue(None, reason=res["reason"])
        details = {k: res[k] for k in ("tpr", "fpr", "threshold", "n_per_side", "seed")}
        return MetricValue(res["acc"], se=proportion_se(res["acc"], 2 * int(res["n_per_side"])), details=details)
