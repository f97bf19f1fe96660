"""Population membership inference, loss feature (tier 0).

``mia_loss_auc`` / ``mia_loss_acc``: a logistic-regression attacker on the per-example loss separates the forget set
(label 1) from the test set (label 0). Sides are balanced by seeded subsampling to the smaller size, then scored with
10-fold ``StratifiedShuffleSplit`` (test size 0.1, random_state = evaluation seed); we report the mean
cross-validated ROC-AUC and accuracy (the NeurIPS'23 starting kit's attack: unlearning-challenge/starting-kit
``unlearning-CIFAR10.ipynb``, ``simple_mia``; Triantafillou et al., arXiv 2406.09073). 0.5 means the forget set
looks like unseen data; compare with the retrained model's value, not with 0.5.

The loss is the task's (:meth:`expunge.tasks.Task.example_losses`): the cross-entropy clipped to [0, 100] for
classification (bit-identical to the ``ce_loss`` these attacks used before tasks existed), the squared error for
regression — Tarun et al., "Deep Regression Unlearning", ICML 2023, attack regression models through their loss too
(their attacker is an SVC on the L1 error fit on retain vs test; here the attack is the same for every task, so a
regression record reads like a classifier's). For one output the squared error is a monotone transform of the L1
error, so rank-based scores of either are equal; the LR attack's AUC differs only if its coefficient's sign does.

``mia_loss_auc_matched``: the same attack with the test side restricted to the forget set's own distribution — the
test examples of the forgotten classes (``class``/``classes`` requests) or of the forgotten fine class
(``subclass``); for random, owner and id requests the forget set is a sample of the training distribution and the
value equals ``mia_loss_auc``. Why (our choice; a known pitfall of MUFAC-style attacks: "forget and test must come
from the same distribution"): against the whole test set the attack also detects the class. For a sub-class of a
coarse-label model that is worse than a bias: almost every loss is ~0, the forget and test means nearly coincide,
and the sign of the 1-D logistic-regression coefficient (mean-driven) can disagree with the ranking (what the AUC
scores). On Fashion-MNIST ``subclass:Sandal`` two retrains of one seed gave 0.29 and 0.70; the rank AUC of the same
losses was 0.31 — the sign flipped. Restricted to the 1,000 test sandals the same retrain gives 0.49.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from expunge.metrics.base import EvalContext, Metric, MetricValue, register_metric
from expunge.metrics.functional.mia import loss_lr_cv
from expunge.metrics.functional.stats import auc_se, proportion_se


class _LossLR(Metric):
    family = "mia_population"
    tasks = frozenset({"classification", "regression", "graph"})  # the feature is the task's per-example loss
    key: ClassVar[str]

    def test_mask(self, ctx: EvalContext) -> np.ndarray | None:
        """Which test examples the attack compares the forget set with (None: all of them)."""
        return None

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        forget = ctx.task.example_losses(ctx.logits(role, "forget"), ctx.labels("forget"))
        test = ctx.task.example_losses(ctx.logits(role, "test"), ctx.labels("test"))
        mask = self.test_mask(ctx)
        res = loss_lr_cv(forget, test if mask is None else test[mask], seed=ctx.seed)
        value, n = res.get(self.key), int(res.get("n_per_side") or 0)
        se = None
        if value is not None:
            se = auc_se(float(value), n, n) if self.key == "auc" else proportion_se(float(value), 2 * n)
        return MetricValue(None if value is None else float(value), reason=res.get("reason"),
                           details={k: v for k, v in res.items() if k != "reason"}, se=se)


@register_metric
class MiaLossAuc(_LossLR):
    name, key = "mia_loss_auc", "auc"
    definition = ("cross-validated ROC-AUC of a logistic-regression attack on the loss, forget (member) vs test, "
                  "balanced; compare with retrain")


@register_metric
class MiaLossAcc(_LossLR):
    name, key = "mia_loss_acc", "acc"
    definition = ("cross-validated accuracy of the same loss-LR attack (forget vs test, balanced); the NeurIPS'23 "
                  "starting kit's MIA score")


def forget_distribution_test_mask(ctx: EvalContext) -> np.ndarray | None:
    """Test examples drawn from the forget set's distribution: the forgotten classes' (class requests) or the
    forgotten fine class's (subclass requests); None (every test example) for random / owner / id requests."""
    request = ctx.splits.request
    if request.kind == "subclass":
        fine = ctx.dataset.class_index(request.classes[0], fine=True)
        return np.asarray(ctx.dataset.test.fine[ctx.splits.test] == fine)
    if ctx.splits.forget_classes:
        return ctx.test_class_mask()
    return None


@register_metric
class MiaLossAucMatched(_LossLR):
    name, key = "mia_loss_auc_matched", "auc"
    definition = ("mia_loss_auc with the test side restricted to the forget set's distribution (the forgotten "
                  "classes' or fine class's test examples; all of them for random/owner requests); compare with "
                  "retrain")

    def test_mask(self, ctx: EvalContext) -> np.ndarray | None:
        return forget_distribution_test_mask(ctx)
