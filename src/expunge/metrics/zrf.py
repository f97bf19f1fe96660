"""Zero Retrain Forgetting (tier 0) — Chundawat et al., "Can Bad Teaching Induce Forgetting?", AAAI 2023
(arXiv 2205.08096); reference vikram2000b/bad-teaching-unlearning ``metrics.py`` (``UnLearningScore``, ``JSDiv``).

* ``zrf`` = 1 − (1/|F|) Σ_{x∈F} JS(p_M(x) ‖ p_rand(x)), JS in bits ⇒ ZRF ∈ [0, 1]. p_rand comes
  from a randomly initialised twin of the same architecture, built from ``ctx.run.model_spec`` with seed 0 (recorded
  in ``details``). There is no absolute target: compare ZRF(M) with ZRF(R) and ZRF(O).
* ``zrf_legacy_badteacher`` — the number the reference code prints, **legacy, for reproducing old tables only**: its
  ``JSDiv`` is a KL(m‖p)-direction term averaged over all N·C elements, not a JS divergence (see
  :func:`expunge.metrics.functional.divergence.zrf_legacy_badteacher`). Values sit near 1 for any model.

Without a model spec (a context built by hand) both are None with a reason. The twin's outputs are cached per
evaluation, so the three roles share one forward pass.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from expunge.metrics.base import EvalContext, Metric, MetricValue, register_metric
from expunge.metrics.functional.divergence import js_divergence, softmax, zrf, zrf_legacy_badteacher
from expunge.models.inference import predict_logits

RANDOM_SEED = 0


def random_twin_probs(ctx: EvalContext) -> np.ndarray:
    """Softmax outputs on the forget set of ``ctx.run.model_spec.build(seed=0)`` (cached per evaluation)."""
    spec = ctx.run.model_spec

    def compute() -> np.ndarray:
        x, _ = ctx.split_tensors("forget")
        return softmax(predict_logits(spec.build(seed=RANDOM_SEED), x, ctx.batch_size).double().numpy())

    key = repr(spec.to_dict()) if hasattr(spec, "to_dict") else repr(spec)
    return ctx.cached(("zrf_random_twin", key), compute)


class _Zrf(Metric):
    family = "divergence"
    run_needs = ("model_spec",)
    legacy: ClassVar[bool]

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        p = softmax(ctx.logits(role, "forget"))
        if len(p) == 0:
            return MetricValue(None, reason="empty forget split")
        q = random_twin_probs(ctx)
        details: dict[str, Any] = {"random_seed": RANDOM_SEED, "n": len(p)}
        if self.legacy:
            return MetricValue(zrf_legacy_badteacher(p, q), details={**details, "legacy": True})
        js = js_divergence(p, q, base=2)
        se = float(js.std(ddof=1) / np.sqrt(len(js))) if len(js) > 1 else None
        return MetricValue(zrf(p, q), se=se, details=details)


@register_metric
class ZRF(_Zrf):
    name, legacy = "zrf", False
    definition = ("1 - mean JS divergence (bits) on the forget set to a random-init twin (seed 0); compare with "
                  "retrain and original")


@register_metric
class ZRFLegacy(_Zrf):
    name, legacy = "zrf_legacy_badteacher", True
    definition = ("LEGACY, for reproducing old tables: Bad Teacher's ZRF with its non-JS 'JSDiv' (KL(m||p) "
                  "direction, mean over N*C); near 1 for any model")
