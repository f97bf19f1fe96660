"""Robustness of forgetting to compression (tier 1): does quantising or pruning the model bring the forgotten
accuracy back? Zhang et al., "Catastrophic Failure of LLM Unlearning via Quantization", ICLR 2025 (arXiv
2410.16454), adapted to vision models.

* ``quant_recovery_int8`` — int8 dynamic quantisation of every ``nn.Linear`` of a private copy
  (``torch.ao.quantization.quantize_dynamic``, per-tensor affine weights, float activations; backend recorded).
* ``prune_recovery_30pct`` — 30 % global magnitude pruning: ``torch.nn.utils.prune.global_unstructured`` with
  ``L1Unstructured`` over the weights of every ``nn.Linear`` and ``nn.Conv*`` of a private copy (biases and
  normalisation layers untouched), made permanent with ``prune.remove``.

Value: recovery = (acc_F(M_c) − acc_F(M)) / (acc_F(O) − acc_F(M)) with M_c the compressed model and all accuracies on
the forget set (the recovery formula of the relearning attacks, Łucki et al., arXiv 2409.18025, applied to the
compressed model: :func:`expunge.metrics.functional.relearn.relearn_recovery`). 0 = compression recovers nothing, 1 =
back to the Original; the Retrain's value is the floor; the Original's is undefined (None). ``details`` add acc_F and
test accuracy after compression (its utility cost). Deterministic; no training, so no run info is needed.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn.utils import prune

from expunge.metrics._tier1 import Tier1Metric, private_copy
from expunge.metrics.base import EvalContext, MetricValue, register_metric
from expunge.metrics.functional.accuracy import accuracy
from expunge.metrics.functional.relearn import relearn_recovery
from expunge.models import inference

PRUNE_AMOUNT = 0.3


def quantize_int8(model: nn.Module) -> tuple[nn.Module, int]:
    """int8 dynamic quantisation of the ``nn.Linear`` layers of a copy; returns (model, number of layers quantised).

    torch marks ``torch.ao.quantization`` as deprecated in favour of torchao; its warnings are silenced here because
    they concern the API, not the evaluated model (they would otherwise become the metric's reason)."""
    n = sum(isinstance(m, nn.Linear) for m in model.modules())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*quantiz.*", category=UserWarning)
        q = torch.ao.quantization.quantize_dynamic(private_copy(model).eval(), {nn.Linear}, dtype=torch.qint8)
    return q, n


def prune_global_l1(model: nn.Module, amount: float = PRUNE_AMOUNT) -> tuple[nn.Module, int]:
    """Global L1 unstructured pruning of ``amount`` of all Linear/Conv weights of a copy (made permanent)."""
    m = private_copy(model)
    targets = [(mod, "weight") for mod in m.modules()
               if isinstance(mod, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d)]
    if targets:
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=amount)
        for mod, pname in targets:
            prune.remove(mod, pname)
    return m, len(targets)


class _Compression(Tier1Metric):
    family = "robustness"
    run_needs = ()
    needs = frozenset({"original"})
    kind: ClassVar[str]

    def compress(self, model: nn.Module) -> tuple[nn.Module, int]:
        raise NotImplementedError

    def _after(self, ctx: EvalContext, role: str) -> dict[str, Any]:
        def compute() -> dict[str, Any]:
            try:
                m, n_layers = self.compress(ctx.models[role])
            except (RuntimeError, AttributeError, NotImplementedError) as exc:  # unsupported layer / backend
                return {"reason": f"{self.kind} failed: {exc}"}
            if n_layers == 0:
                return {"reason": f"no layer to {self.kind}"}
            xf, yf = ctx.split_tensors("forget")
            xt, yt = ctx.split_tensors("test")
            return {"acc_forget_after": inference.accuracy(m, xf, yf), "acc_test_after": inference.accuracy(m, xt, yt),
                    "layers": n_layers}

        return ctx.cached((self.kind,), compute, role=role)

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        acc_m = accuracy(ctx.logits(role, "forget"), ctx.labels("forget"))
        acc_o = accuracy(ctx.logits("original", "forget"), ctx.labels("forget"))
        if acc_m is None or acc_o is None:
            return MetricValue(None, reason="empty forget split")
        after = self._after(ctx, role)
        if "reason" in after:
            return MetricValue(None, reason=after["reason"])
        res = relearn_recovery(acc_o, acc_m, after["acc_forget_after"])
        details = {**after, "acc_forget_before": acc_m, "acc_original": acc_o, "forgotten": res["forgotten"]}
        if self.kind == "quantize":
            details["backend"] = torch.backends.quantized.engine
        return MetricValue(res["recovery"], reason=res.get("reason"), details=details)


@register_metric
class QuantRecoveryInt8(_Compression):
    name, kind = "quant_recovery_int8", "quantize"
    definition = ("share of forgotten forget-set accuracy recovered by int8 dynamic quantisation of the Linear "
                  "layers; retrain = floor")

    def compress(self, model: nn.Module) -> tuple[nn.Module, int]:
        return quantize_int8(model)


@register_metric
class PruneRecovery30(_Compression):
    name, kind = "prune_recovery_30pct", "prune"
    definition = ("share of forgotten forget-set accuracy recovered by 30% global L1 magnitude pruning of "
                  "Linear/Conv weights; retrain = floor")

    def compress(self, model: nn.Module) -> tuple[nn.Module, int]:
        return prune_global_l1(model)
