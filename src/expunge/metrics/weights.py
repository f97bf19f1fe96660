"""Weight-space sanity checks (tier 0): L2 distance of the parameters to the Original and to the Retrain.

* ``weight_l2_to_original`` = ‖θ_M − θ_O‖₂ — how far the method moved the weights (0 for a do-nothing method).
* ``weight_l2_to_retrain`` = ‖θ_M − θ_R‖₂ — distance to the oracle. The oracle starts from a different random
  initialisation, so this is large for every model; read it against the Original's value, not as an absolute.

All parameter tensors (``named_parameters``; buffers such as BatchNorm running statistics are excluded) are flattened
and concatenated; ``details`` add the distance relative to the reference's norm. A model compared with itself (the
Original for ``_to_original``, the Retrain for ``_to_retrain``) gets None with a reason: the 0 is true by
construction and says nothing. Models with different parameter layouts give None with a reason. No standard error:
nothing is sampled.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from torch import nn

from expunge.metrics.base import EvalContext, Metric, MetricValue, register_metric
from expunge.metrics.functional.weights import l2_distance


def parameters_of(model: nn.Module) -> dict[str, np.ndarray]:
    return {n: p.detach().to("cpu").double().numpy() for n, p in model.named_parameters()}


class _WeightL2(Metric):
    family = "weights"
    tasks = frozenset({"classification", "regression"})  # parameters only: no outputs, no targets
    reference: ClassVar[str]

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        if role == self.reference:
            return MetricValue(None, reason=f"the {role} model compared with itself (0 by construction)")
        params, ref = parameters_of(ctx.models[role]), parameters_of(ctx.models[self.reference])
        bad = [n for d in (params, ref) for n, a in d.items() if not np.isfinite(a).all()]
        if bad:
            return MetricValue(None, reason=f"non-finite parameters ({', '.join(sorted(set(bad))[:3])}): a collapsed "
                                            "model")
        res = l2_distance(params, ref)
        if res["distance"] is None:
            return MetricValue(None, reason=f"not comparable in weight space: {res['reason']}")
        return MetricValue(res["distance"], details={"relative": res["relative"], "n_params": res["n_params"]})


@register_metric
class WeightL2ToOriginal(_WeightL2):
    name, reference = "weight_l2_to_original", "original"
    needs = frozenset({"original"})
    definition = "L2 norm of the parameter difference to the original model (how far the weights moved)"


@register_metric
class WeightL2ToRetrain(_WeightL2):
    name, reference = "weight_l2_to_retrain", "retrain"
    needs = frozenset({"retrain"})
    definition = ("L2 norm of the parameter difference to the retrained model (different init: compare with the "
                  "original's value)")
