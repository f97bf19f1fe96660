"""Concealment audit by weight quantisation (tier 1): does the forgotten answer come back when the language model's
weights are quantised? Zhang et al., "Catastrophic Failure of LLM Unlearning via Quantization", ICLR 2025 (arXiv
2410.16454; spec ``metrics.md`` §5.3): "21% of forgotten knowledge retained at full precision, 83% after 4-bit".

A private copy of the model has its language-model weights fake-quantised in torch
(:mod:`expunge.metrics.functional.llm_audit`; which weights: :func:`expunge.metrics._llm_audit.quantisable_weights`):

- ``llm_audit_quant_recovery_int8`` — symmetric per-output-channel int8 round-to-nearest;
- ``llm_audit_quant_recovery_nf4`` — 4-bit NormalFloat, absmax per block of 64 values (bitsandbytes' NF4 layout;
  simulated, so no bitsandbytes or GPU is needed; the paper's main 4-bit results use GPTQ/AWQ/bitsandbytes — the
  backend is recorded in ``details``).

Value: recovery = (P̄_F(M_q) − P̄_F(M)) / (P̄_F(O) − P̄_F(M)) with P̄_F the mean forget-answer probability exp(−ℓ̄)
(the formula of §5.2, :func:`expunge.metrics.functional.relearn.relearn_recovery`). 0 = quantisation brings nothing
back, 1 = back to the Original; the Retrain's value is the floor; the Original's is undefined (None, nothing
forgotten). ``details`` add the retain-answer probability after quantisation (its utility cost). Deterministic; no
training and no run info needed.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from expunge.metrics._llm_audit import NotALanguageModel, answer_probs, quantisable_weights
from expunge.metrics._tier1 import Tier1Metric, private_copy
from expunge.metrics.base import EvalContext, MetricValue, register_metric
from expunge.metrics.functional.llm_audit import int8_rtn, nf4_blockwise
from expunge.metrics.functional.relearn import relearn_recovery


def quantize_lm(model: nn.Module, scheme: str) -> tuple[nn.Module, int]:
    """A copy of ``model`` with its language-model weights fake-quantised (``"int8"`` or ``"nf4"``); returns (copy,
    number of weights quantised)."""
    m = private_copy(model)
    targets = quantisable_weights(m)
    with torch.no_grad():
        for _, mod, axis in targets:
            w = mod.weight
            w.copy_(int8_rtn(w, axis) if scheme == "int8" else nf4_blockwise(w))
    return m, len(targets)


def forget_prob(ctx: EvalContext, role: str, split: str = "forget") -> float:
    """Mean answer probability of ``role`` on ``split`` (cached per model content)."""
    def compute() -> float:
        x, y = ctx.split_tensors(split)
        return float(answer_probs(ctx.models[role], x, y, ctx.batch_size).mean())

    return ctx.cached(("llm_audit_prob", split), compute, role=role)


class _Quant(Tier1Metric):
    family = "llm_audit"
    run_needs = ()
    needs = frozenset({"original"})
    tasks = frozenset({"llm"})
    scheme: ClassVar[str]
    backend: ClassVar[str]

    def _after(self, ctx: EvalContext, role: str) -> dict[str, Any]:
        def compute() -> dict[str, Any]:
            try:
                m, n = quantize_lm(ctx.models[role], self.scheme)
            except NotALanguageModel as exc:
                return {"reason": str(exc)}
            if n == 0:
                return {"reason": "no Linear / Conv1D weight to quantise"}
            xf, yf = ctx.split_tensors("forget")
            xr, yr = ctx.split_tensors("retain")
            return {"prob_forget_after": float(answer_probs(m, xf, yf, ctx.batch_size).mean()),
                    "prob_retain_after": float(answer_probs(m, xr, yr, ctx.batch_size).mean()) if len(xr) else None,
                    "weights_quantised": n}

        return ctx.cached(("llm_audit_quant", self.scheme), compute, role=role)

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        if len(ctx.splits.forget) == 0:
            return MetricValue(None, reason="empty forget split")
        after = self._after(ctx, role)
        if "reason" in after:
            return MetricValue(None, reason=after["reason"])
        p_m, p_o = forget_prob(ctx, role), forget_prob(ctx, "original")
        res = relearn_recovery(p_o, p_m, after["prob_forget_after"])
        return MetricValue(res["recovery"], reason=res.get("reason"),
                           details={**after, "prob_forget_before": p_m, "prob_original": p_o,
                                    "forgotten": res["forgotten"], "backend": self.backend})


@register_metric
class LlmQuantRecoveryInt8(_Quant):
    name, scheme = "llm_audit_quant_recovery_int8", "int8"
    backend = "simulated int8 RTN, symmetric absmax per output channel"
    definition = ("share of the forgotten forget-answer probability recovered after int8 per-channel RTN "
                  "quantisation of the LM weights; retrain = floor")


@register_metric
class LlmQuantRecoveryNf4(_Quant):
    name, scheme = "llm_audit_quant_recovery_nf4", "nf4"
    backend = "simulated NF4, absmax per block of 64 (bitsandbytes layout, no double quantisation)"
    definition = ("share of the forgotten forget-answer probability recovered after 4-bit NF4 (blocks of 64) "
                  "quantisation of the LM weights; retrain = floor")
