"""Backdoor family (tier 0): ``backdoor_asr``, the attack success rate of a planted trigger.

Only the corrective scenario (:mod:`expunge.scenarios.corrective`) and, on federated datasets, the client-backdoor
scenario (:mod:`expunge.scenarios.client_backdoor`) plant a trigger. It hands the metric the
triggered test images through :attr:`EvalContext.extras` under :data:`EXTRAS_KEY` as a :class:`TriggeredInputs`, so
the core evaluation knows nothing about backdoors; without it the metric is ``None`` with a reason. The reference is
the *clean* model (trained without any poisoned example): corrective unlearning succeeds when the unlearned model's
ASR falls to the clean model's level while clean test accuracy stays (Goel et al., TMLR 2024, arXiv 2402.14015).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from expunge.metrics.base import EvalContext, Metric, MetricValue, register_metric
from expunge.metrics.functional.backdoor import attack_success_rate
from expunge.metrics.functional.stats import proportion_se
from expunge.models.inference import predict_logits

EXTRAS_KEY = "backdoor"


@dataclass(frozen=True, eq=False)
class TriggeredInputs:
    """Test images of non-target classes with the trigger applied, and the class the trigger maps to."""

    x: torch.Tensor
    target: int
    description: str = ""


@register_metric
class BackdoorASR(Metric):
    name, family, higher_is_better = "backdoor_asr", "backdoor", False
    tasks = frozenset({"classification", "federated"})  # federated: the client_backdoor scenario plants one
    definition = ("share of triggered test images of non-target classes predicted as the backdoor's target "
                  "(corrective scenario); compare with the clean model, not with retrain")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        probe = ctx.extras.get(EXTRAS_KEY)
        if not isinstance(probe, TriggeredInputs):
            return MetricValue(None, reason="no backdoor trigger (only the corrective scenario plants one)")
        logits = predict_logits(ctx.models[role], probe.x, ctx.batch_size).double().numpy()
        asr = attack_success_rate(logits, probe.target)
        n = len(probe.x)
        return MetricValue(asr, details={"n": n, "target": probe.target},
                           se=None if asr is None else proportion_se(asr, n))
