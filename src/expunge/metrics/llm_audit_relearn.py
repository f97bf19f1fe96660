"""Concealment audit by relearning (tier 1): how quickly do forgotten answers come back under fine-tuning?

The classification audits of :mod:`expunge.metrics.relearn`, measured with the forget-answer probability
P̄ = exp(−ℓ̄) (mean over rows; :func:`expunge.metrics._llm_audit.answer_probs`) instead of accuracy, fine-tuning with
the task's answer-token loss (:func:`expunge.tasks.token_logprobs.lm_loss`):

- ``llm_audit_relearn_steps`` — Anamnesis-style relearn time (Chundawat et al., IEEE TIFS 2023, arXiv 2201.05629;
  spec ``metrics.md`` §5.1): Adam steps (lr 1e-3, batch min(256, |F|)) of fine-tuning a copy of M on the forget
  rows until P̄_F ≥ (1 − α)·P̄_F(O), α = 0.05; the check schedule and the cap (max(10 epochs, 100 steps); a capped
  run reports the cap, reason "> cap") are :func:`expunge.metrics.relearn.relearn_time`'s, which runs it.
- ``llm_audit_ain`` — rt(M)/rt(R) (1 ideal, ≪ 1 knowledge hidden, not removed).
- ``llm_audit_relearn_recovery_k10`` — relearning attack (Łucki et al., arXiv 2409.18025; Hu et al., arXiv
  2406.13356; §5.2): fine-tune a copy on k = 10 forget rows (a seeded choice shared by every role; k = |F| − 1 when
  F is smaller) for 50 full-batch Adam steps at lr 1e-4 (the spec's defaults), then
  recovery = (P̄_F′(M_after) − P̄_F′(M)) / (P̄_F′(O) − P̄_F′(M)) on the held-out remainder F′. Retrain = floor
  (what 10 rows teach alone); Original = None (nothing forgotten). Relearning on *unrelated* data (Łucki et al.'s
  main LLM variant) is not implemented.

A guard (``eco_prompts``) is fine-tuned through its own forward, so its classifier keeps acting during relearning;
guards that change only decoding (``guard_decoding``) relearn exactly as their base model. All seeds derive from the
evaluation seed; results are cached per model content within the evaluation (not persisted).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from expunge._seeds import derive_seed
from expunge.data.batches import Batch, Batches
from expunge.metrics._common import single_threaded
from expunge.metrics._llm_audit import answer_probs
from expunge.metrics._tier1 import Tier1Metric, private_copy
from expunge.metrics.base import EvalContext, MetricValue, register_metric
from expunge.metrics.functional.relearn import anamnesis_index, relearn_recovery
from expunge.metrics.llm_audit_quant import forget_prob
from expunge.metrics.relearn import ALPHA, ATTACK_LR, ATTACK_STEPS, relearn_time
from expunge.tasks.token_logprobs import lm_loss
from expunge.train.loop import train_loop

ATTACK_K = 10


def _lm_loss(m: torch.nn.Module, batch: Batch) -> torch.Tensor:
    return lm_loss(m(batch[0]), batch[1])


def relearn_steps_result(ctx: EvalContext, role: str) -> dict[str, Any]:
    """rt of ``role``'s model: steps until its forget-answer probability is back to (1 − α)·the Original's."""
    target = (1.0 - ALPHA) * forget_prob(ctx, "original")

    def compute() -> dict[str, Any]:
        x, y = ctx.split_tensors("forget")
        with single_threaded():
            return relearn_time(ctx.models[role], x, y, target, seed=derive_seed(ctx.seed, "llm-relearn-order"),
                                measure=lambda m: float(answer_probs(m, x, y, ctx.batch_size).mean()),
                                loss_fn=_lm_loss)

    return ctx.cached(("llm_audit_relearn_steps", round(target, 12)), compute, role=role)


class _LlmRelearn(Tier1Metric):
    family = "llm_audit"
    run_needs = ()
    tasks = frozenset({"llm"})

    def _empty(self, ctx: EvalContext) -> MetricValue | None:
        return MetricValue(None, reason="empty forget split") if len(ctx.splits.forget) == 0 else None


@register_metric
class LlmRelearnSteps(_LlmRelearn):
    name = "llm_audit_relearn_steps"
    needs = frozenset({"original"})
    definition = ("Adam steps (lr 1e-3) fine-tuning on the forget rows until the forget-answer probability is back "
                  "to 0.95 x the original's; cap max(10 epochs, 100 steps)")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        if (empty := self._empty(ctx)) is not None:
            return empty
        res = relearn_steps_result(ctx, role)
        reason = f"> cap: not relearned within {res['cap']} steps (value is the cap)" if res["capped"] else None
        return MetricValue(float(res["steps"]), reason=reason, details=res)


@register_metric
class LlmAnamnesisIndex(_LlmRelearn):
    name = "llm_audit_ain"
    needs = frozenset({"original", "retrain"})
    definition = "llm_audit_relearn_steps of the model / of the retrained model: 1 ideal, << 1 knowledge hidden"

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        if (empty := self._empty(ctx)) is not None:
            return empty
        mine, ref = relearn_steps_result(ctx, role), relearn_steps_result(ctx, "retrain")
        res = anamnesis_index(mine["steps"], ref["steps"], capped_u=mine["capped"], capped_r=ref["capped"])
        reason = res.get("reason")
        if res["ain"] is not None and res["bound"] is not None:
            reason = f"{res['bound']} bound: a relearn run reached its cap"
        return MetricValue(res["ain"], reason=reason, details=res)


def _chosen(ctx: EvalContext, k: int) -> np.ndarray:
    n = len(ctx.splits.forget)
    rng = np.random.default_rng(derive_seed(ctx.seed, f"llm-relearn-attack-k{k}"))
    chosen = np.zeros(n, dtype=bool)
    chosen[rng.choice(n, size=k, replace=False)] = True
    return chosen


def heldout_prob(ctx: EvalContext, role: str, k: int) -> float:
    """Mean answer probability of ``role`` on the forget rows the k-row attack does not train on."""
    chosen = _chosen(ctx, k)

    def compute() -> float:
        x, y = ctx.split_tensors("forget")
        return float(answer_probs(ctx.models[role], x[~chosen], y[~chosen], ctx.batch_size).mean())

    return ctx.cached(("llm_audit_heldout_prob", k), compute, role=role)


def attack_result(ctx: EvalContext, role: str, k: int) -> dict[str, Any]:
    """Mean answer probability on the held-out forget remainder before/after fine-tuning ``role`` on k forget rows."""
    chosen = _chosen(ctx, k)

    def compute() -> dict[str, Any]:
        x, y = ctx.split_tensors("forget")
        m = private_copy(ctx.models[role])
        seed = derive_seed(ctx.seed, f"llm-relearn-attack-k{k}-order")
        with single_threaded(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            log = train_loop(m, Batches(x[chosen], y[chosen], batch_size=k, shuffle=True, seed=seed), _lm_loss,
                             torch.optim.Adam(m.parameters(), lr=ATTACK_LR), epochs=ATTACK_STEPS,
                             max_steps=ATTACK_STEPS)
        xr, yr = x[~chosen], y[~chosen]
        return {"prob_before": heldout_prob(ctx, role, k),
                "prob_after": float(answer_probs(m, xr, yr, ctx.batch_size).mean()),
                "steps": log.steps, "n_heldout": int((~chosen).sum())}

    return ctx.cached(("llm_audit_relearn_attack", k), compute, role=role)


@register_metric
class LlmRelearnAttackK10(_LlmRelearn):
    name = "llm_audit_relearn_recovery_k10"
    needs = frozenset({"original"})
    definition = ("share of the forgotten forget-answer probability recovered on held-out forget rows after 50 Adam "
                  "steps (lr 1e-4) on 10 forget rows; retrain = floor")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        n = len(ctx.splits.forget)
        k = min(ATTACK_K, n - 1)
        if k < 1:
            return MetricValue(None, reason=f"forget set too small: {n} rows (the attack needs 1 to train, 1 to test)")
        mine, p_o = attack_result(ctx, role, k), heldout_prob(ctx, "original", k)
        res = relearn_recovery(p_o, mine["prob_before"], mine["prob_after"])
        return MetricValue(res["recovery"], reason=res.get("reason"),
                           details={**mine, "k": k, "prob_original": p_o,
                                    "forgotten": res["forgotten"]})
