"""Unlearning Depth Score (tier 0): is the forgotten knowledge still readable from the model's activations?

"Measuring the Depth of LLM Unlearning via Activation Patching" (arXiv 2605.24614); reference
gnueaj/unlearning-depth-score ``compute_uds.py`` (``_run_s1_s2_side_by_side_logprob_batch``) and ``uds/core.py``
(``forward_with_patch``), read and re-implemented here. Target model: the Original (it knows the forget answers).
For each forget row and each transformer block ℓ:

- s_full: the Original's mean answer-token log-probability (teacher forcing);
- Stage 1: the Original re-run with block ℓ's output replaced, at the answer positions, by the *retain oracle's*
  block-ℓ output on the same input → s1_ℓ, d1_ℓ = s_full − s1_ℓ;
- Stage 2: the same with the *evaluated model's* block-ℓ output → d2_ℓ = s_full − s2_ℓ;
- knowledge-encoding (KE) layers: d1_ℓ > τ = 0.05; UDS = Σ_KE d1_ℓ·clip(d2_ℓ/d1_ℓ, 0, 1) / Σ_KE d1_ℓ
  (:func:`expunge.metrics.functional.llm_audit.uds_score`); rows without a KE layer are skipped (the reference's
  ``None``). The value is the mean over the rows that have one.

1 = erased to the retain oracle's depth; 0 = the knowledge is intact in the activations. Known answers (tested): the
Original scores exactly 0 and the retain oracle exactly 1.

As the reference's default ``patch_scope="span"``, the patched positions are those whose logits score the answer:
position t for every labelled token t + 1. The reference scores a hand-annotated entity span; the ``llm`` task has
no entity annotations, so every labelled token (answer and EOS) is scored and patched (our choice). Block outputs are
the residual stream after each block (``hidden_states[ℓ + 1]`` before GPT-2's final layer norm), patched with a
forward hook. Activations are taken from the *language model* inside a wrapper (``model.lm``): an inference-time
guard (ECO, GUARD) leaves the weights as they were, so its depth is that of the Original — 0 — by design: UDS
measures what the weights still encode.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from expunge.errors import NonFiniteOutputs
from expunge.metrics._llm_audit import NotALanguageModel, blocks, language_model
from expunge.metrics.base import EvalContext, Metric, MetricValue, register_metric
from expunge.metrics.functional.llm_audit import UDS_TAU, uds_score
from expunge.models.inference import eval_mode
from expunge.tasks.token_logprobs import IGNORE_INDEX, answer_nll


def _output(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def block_outputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Every block's output ``[N, L, d]`` when the language model of ``model`` reads ``x``."""
    lm, outs = language_model(model), []
    hooks = [b.register_forward_hook(lambda _m, _i, o: outs.append(_output(o).detach())) for b in blocks(model)]
    try:
        with eval_mode(lm):
            lm(input_ids=x.long())
    finally:
        for h in hooks:
            h.remove()
    return outs


@torch.no_grad()
def patched_scores(target: nn.Module, x: torch.Tensor, y: torch.Tensor, layer: int | None,
                   source: torch.Tensor | None) -> np.ndarray:
    """Mean answer-token log-probability of each row under ``target``'s language model, with block ``layer``'s output
    replaced by ``source`` at the positions that score an answer token (no patch when ``layer`` is None)."""
    lm = language_model(target)
    where = torch.zeros_like(y, dtype=torch.bool)
    where[:, :-1] = y[:, 1:] != IGNORE_INDEX

    def patch(_m: nn.Module, _i: Any, out: Any) -> Any:
        hs = _output(out)
        assert source is not None
        hs = torch.where(where.unsqueeze(-1), source.to(hs.dtype), hs)
        return (hs, *out[1:]) if isinstance(out, tuple) else hs

    hook = blocks(target)[layer].register_forward_hook(patch) if layer is not None else None
    try:
        with eval_mode(lm):
            logits = lm(input_ids=x.long()).logits
    finally:
        if hook is not None:
            hook.remove()
    return (-answer_nll(logits, y)).double().numpy()


def stage_deltas(ctx: EvalContext, source_role: str) -> np.ndarray:
    """``[N, layers]``: s_full − s_patched with ``source_role``'s activations patched into the Original."""
    def compute() -> np.ndarray:
        x, y = ctx.split_tensors("forget")
        target = ctx.models["original"]
        out = []
        for i in range(0, len(x), ctx.batch_size):
            xb, yb = x[i:i + ctx.batch_size], y[i:i + ctx.batch_size]
            full = patched_scores(target, xb, yb, None, None)
            acts = block_outputs(ctx.models[source_role], xb)
            out.append(np.stack([full - patched_scores(target, xb, yb, ell, a) for ell, a in enumerate(acts)], 1))
        deltas = np.concatenate(out)
        if not np.isfinite(deltas).all():
            raise NonFiniteOutputs(f"patching the {source_role} model's activations into the Original gives "
                                   "non-finite answer log-probabilities: a collapsed model")
        return deltas

    # keyed by both models' content: the Original is the patch target
    return ctx.cached(("llm_audit_uds_deltas", ctx.model_key("original")), compute, role=source_role)


@register_metric
class UnlearningDepthScore(Metric):
    name = "llm_audit_uds"
    family = "llm_audit"
    tasks = frozenset({"llm"})
    needs = frozenset({"original", "retrain"})
    higher_is_better = None
    definition = ("Unlearning Depth Score: share of the retain oracle's answer log-prob drop reproduced when the "
                  "model's block outputs are patched into the Original, weighted over knowledge-encoding layers "
                  "(d1 > 0.05); 1 = erased like the oracle, 0 = intact")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        if len(ctx.splits.forget) == 0:
            return MetricValue(None, reason="empty forget split")
        try:
            d1, d2 = stage_deltas(ctx, "retrain"), stage_deltas(ctx, role)
        except NotALanguageModel as exc:
            return MetricValue(None, reason=str(exc))
        per_row = [uds_score(a, b, UDS_TAU) for a, b in zip(d1, d2, strict=True)]
        defined = [v for v in per_row if v is not None]
        details = {"rows": len(per_row), "rows_with_ke_layer": len(defined), "tau": UDS_TAU,
                   "ke_layers_per_row_mean": float((d1 > UDS_TAU).sum(axis=1).mean()),
                   "d1_mean_per_layer": d1.mean(axis=0).tolist(), "d2_mean_per_layer": d2.mean(axis=0).tolist()}
        if not defined:
            return MetricValue(None, reason=f"no forget row has a knowledge-encoding layer (patching the retain "
                                            f"oracle's activations lowers no answer log-prob by > {UDS_TAU})",
                               details=details)
        return MetricValue(float(np.mean(defined)), details=details)
