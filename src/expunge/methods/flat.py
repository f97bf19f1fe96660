"""FLAT: Forget-data-only Loss AdjustmenT — maximise an f-divergence between a template answer and the forget answer.

For each forget question x with its answer y_f and a template (refusal) answer y_e, with P_θ(y|x) the *average token
probability* mean_t π_θ(y_t|x, y_<t) over the answer tokens:

    L = −mean[ g*(P_θ(y_e|x)) ] + mean[ f*(g*(P_θ(y_f|x))) ],

the variational (f-GAN) form of the chosen f-divergence, activation g* and conjugate f*:
KL g*(v) = v, f*(t) = e^{t−1}; Jensen–Shannon g*(v) = log 2 − log(1 + e^{−v}), f*(t) = −log(2 − e^t); Pearson χ²
g*(v) = v, f*(t) = t²/4 + t; total variation g*(v) = ½ tanh v, f*(t) = t. Descending L raises P(y_e|x) and lowers
P(y_f|x) (one step of each divergence is tested). No retain data and no reference model (the paper's point).

Choices the paper / code leave open (stated here, tested where they matter):
- divergence: default ``kl`` (the spec's worked pair); the reference's ``config/forget.yaml`` ships ``Total-Variation``
  — set ``divergence=tv`` for it.
- template answers: this class's own refusal strings (:data:`~expunge.methods._shared.lm.REFUSALS`, the spirit of the
  reference's ``data/polite_refusal_responses``), one drawn per row per step from the run's seed; never the dataset's
  paraphrased / perturbed answers.
- the average: over answer tokens (the paper's definition); the reference's ``ProbLossStable`` + ``mean`` divides by
  every position of the padded batch (prompt and padding included), a length-dependent rescaling not copied here.
- rows without a prompt (biographies: no question to answer with a template) keep the forget term and drop the
  template term.

Paper: Wang, Wei, Liu, Pang, Liu, Shah, Bao, Liu, Wei, "LLM Unlearning via Loss Adjustment with Only Forget Data",
ICLR 2025, arXiv 2410.11143. Reference: UCSC-REAL/FLAT ``dataloader.py`` (``loss_type == "cl"``,
``get_contrastive_loss``, ``ProbLossStable``), ``config/forget.yaml`` (lr 1e-5, batch 16 × 4 accumulation, 5 epochs,
weight decay 0.01). Optimiser defaults re-scaled for a tiny GPT (:class:`~expunge.methods._shared.lm.LMParams`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from expunge._hparams import hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batch
from expunge.methods._shared.lm import REFUSALS, LMParams, encode_refusals, mean_token_probability, refusal_rows
from expunge.methods._shared.optim import optimizer_for
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.train.loop import train_loop


def activation(v: torch.Tensor, divergence: str) -> torch.Tensor:
    """g*(v), the output activation of the f-GAN variational form."""
    if divergence == "js":
        return math.log(2.0) - F.softplus(-v)
    if divergence == "tv":
        return 0.5 * torch.tanh(v)
    return v  # kl, pearson


def conjugate(t: torch.Tensor, divergence: str) -> torch.Tensor:
    """f*(t), the convex conjugate of the divergence's generator."""
    if divergence == "kl":
        return torch.exp(t - 1.0)
    if divergence == "js":
        return -torch.log(2.0 - torch.exp(t))
    if divergence == "pearson":
        return t * t / 4.0 + t
    return t  # tv


def flat_loss(p_template: torch.Tensor, p_forget: torch.Tensor, divergence: str,
              template_mask: torch.Tensor | None = None) -> torch.Tensor:
    """−mean g*(P_e) + mean f*(g*(P_f)); rows with ``template_mask`` False drop their template term."""
    gain = activation(p_template, divergence)
    if template_mask is not None:
        gain = gain * template_mask.to(gain.dtype)
    return -gain.mean() + conjugate(activation(p_forget, divergence), divergence).mean()


@dataclass(frozen=True, kw_only=True)
class FLATParams(LMParams):
    divergence: Literal["kl", "js", "pearson", "tv"] = hp(
        "kl", "f-divergence of the variational loss (reference config: tv)", choices=("kl", "js", "pearson", "tv"),
        search=("kl", "js", "pearson", "tv"))
    epochs: int = hp(5, "passes over the forget set (reference: 5)", low=1, search=(1, 20))
    weight_decay: float = hp(0.01, "weight decay (reference: 0.01)", low=0.0)
    lr: float = hp(1e-4, "AdamW learning rate (reference 1e-5 on 7B; re-scaled for a tiny GPT; 3e-4 collapsed the "
                         "facts model to refusals)", low=0.0,
                   low_open=True, search=(1e-5, 3e-3), log=True)
    refusals: tuple[str, ...] = hp(REFUSALS, "template answers y_e (comma-separated; words of the vocabulary)")


@register_method
class FLAT(UnlearningMethod[FLATParams]):
    """Raise P(template answer) and lower P(forget answer) via an f-divergence's variational form; forget data only."""

    name = "flat"
    paper = "Wang et al., LLM Unlearning via Loss Adjustment with Only Forget Data, ICLR 2025, arXiv 2410.11143"
    reference = "UCSC-REAL/FLAT dataloader.py (loss_type 'cl', get_contrastive_loss, ProbLossStable)"
    access = DataAccess.FORGET
    Params = FLATParams
    tasks = frozenset({"llm"})

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        templates = encode_refusals(data.tokenizer, p.refusals)
        generator = ctx.generator(salt=0xF1A7)

        def loss(m: nn.Module, batch: Batch) -> torch.Tensor:
            xf, yf = batch
            xe, ye, prompted = refusal_rows(xf, yf, templates, generator)
            p_forget = mean_token_probability(m(xf), yf)
            p_template = mean_token_probability(m(xe), ye)
            return flat_loss(p_template, p_forget, p.divergence, prompted)

        log = train_loop(model, data.forget_loader(p.batch_size), loss, optimizer_for(model, p), epochs=p.epochs,
                         clip_grad_norm=p.clip_grad_norm, progress=self.name if ctx.progress else None)
        ctx.notes.update(steps=log.steps, skipped_nonfinite=log.skipped_nonfinite, stopped=log.stopped)
        return model
