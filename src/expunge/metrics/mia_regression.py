"""The regression membership-inference attack of Tarun et al., "Deep Regression Unlearning", ICML 2023 (tier 0).

``mia_l1_svc_retain_vs_test_dru`` — reference ayu987/deep-regression-unlearning ``metrics.py``
(``get_attack_features``, ``get_membership_attack_prob``): an ``SVC(C=3, gamma='auto', kernel='rbf')`` learns to
tell members from non-members by one feature, the example's L1 loss |ŷ − y| (averaged over outputs for
multi-output targets, as ``F.l1_loss`` per example); the value is the share of the forget set it calls a member.
Lower means the forget set looks unseen; the target is the Retrain's value (not 0: a retrain still fits forget
examples that resemble training data), reported beside it.

It differs from the task-generic loss attacks (``mia_loss_auc``: a cross-validated logistic regression on the squared
error, forget vs test, scored by AUC): the attacker never sees the forget set during training (it learns "member"
from the retain set), the classifier is a kernel SVC (non-monotone decision regions on the error axis), and the score
is a share of the forget set, not a separability measure.

Choices: members are the retain set (the reference's function names its member loader ``retain_loader``; the AgeDB
notebook passes it a 2,000-row sample of the whole training set, forget rows included — training the attacker on the
very rows it then labels); sides balanced by seeded subsampling and capped at 1,000 per side, as the other SVC attacks
(:data:`expunge.metrics.mia_population.SVC_MAX_PER_SIDE`; the notebook samples 2,000); the forget set is scored whole.
"""

from __future__ import annotations

from expunge.metrics._common import single_threaded
from expunge.metrics.base import EvalContext, Metric, MetricValue, register_metric
from expunge.metrics.functional.regression import absolute_errors, l1_svc_mia
from expunge.metrics.functional.stats import proportion_se
from expunge.metrics.mia_population import SVC_MAX_PER_SIDE, _cap


@register_metric
class MiaL1SvcDRU(Metric):
    name, family = "mia_l1_svc_retain_vs_test_dru", "mia_regression"
    tasks = frozenset({"regression"})
    definition = ("share of forget predicted member by an SVC on the absolute error fit on retain vs test (Deep "
                  "Regression Unlearning); compare with retrain")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        seed = ctx.seed

        def errors(split: str):  # type: ignore[no-untyped-def]
            return absolute_errors(ctx.logits(role, split), ctx.labels(split))

        retain = _cap(errors("retain"), SVC_MAX_PER_SIDE, seed, 11)
        test = _cap(errors("test"), SVC_MAX_PER_SIDE, seed, 12)
        forget = errors("forget")
        with single_threaded():
            v = l1_svc_mia(retain, test, forget, seed=seed)
        if v is None:
            return MetricValue(None, reason="attacker sets too small (< 20 per side) or empty forget set")
        return MetricValue(v, se=proportion_se(v, len(forget)),
                           details={"n_per_side": min(len(retain), len(test)), "n_forget": len(forget), "seed": seed})
