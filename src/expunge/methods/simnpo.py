"""SimNPO: NPO without a reference model, on the length-normalised answer likelihood, with a reward margin.

With ℓ̄(y|x) = ℓ(y|x)/|y| the mean answer-token NLL under π_θ:

    L_f = −(2/β)·mean log σ(β·ℓ̄ − γ_m),   L = c_f·L_f + α·L_r,

L_r the retain term on a paired retain batch (token-mean NLL, or per-token KL to the frozen original). Per example
dL_f/dℓ̄ = −2σ(γ_m − β·ℓ̄)/N: its magnitude falls as ℓ̄ grows, so already-forgotten answers get less push (tested).
Pitfall (spec): OpenUnlearning writes σ(β(ℓ̄ − δ)), i.e. δ = γ_m/β; this class stores the paper's margin γ_m
(``margin``) and converts nothing else. Length normalisation makes no reference model necessary.

Paper: Fan, Liu, Lin, Jia, Zhang, Mei, Liu, "Simplicity Prevails: Rethinking Negative Preference Optimization for LLM
Unlearning", arXiv 2410.07163. Reference: locuslab/open-unlearning ``src/trainer/unlearn/simnpo.py`` and
``configs/trainer/SimNPO.yaml`` (from OPTML-Group/Unlearn-Simple ``TOFU/config/forget.yaml``): β = 4.5, γ_m = δ = 0,
c_f = 0.125 (``npo_coeff``, OpenUnlearning's ``gamma``), α = 1, NLL retain. Optimiser defaults re-scaled for a tiny
GPT (:class:`~expunge.methods._shared.lm.LMParams`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from expunge._hparams import hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.methods._shared.lm import LMParams, mean_nll, reference_copy, train_forget_retain
from expunge.methods.base import RunContext, UnlearningMethod, register_method


@dataclass(frozen=True, kw_only=True)
class SimNPOParams(LMParams):
    beta: float = hp(4.5, "inverse temperature β", low=0.0, low_open=True, search=(1.0, 10.0), log=True)
    margin: float = hp(0.0, "reward margin γ_m of the paper (OpenUnlearning's delta = γ_m / β)", low=0.0,
                       search=(0.0, 2.0))
    forget_coeff: float = hp(0.125, "weight c_f of the forget term (Unlearn-Simple's npo_coeff)", low=0.0,
                             search=(0.05, 1.0), log=True)
    alpha: float = hp(1.0, "weight α of the retain term", low=0.0, search=(0.1, 10.0), log=True)
    lr: float = hp(1e-3, "AdamW learning rate (re-scaled for a tiny GPT; c_f = 0.125 and the σ weights shrink the "
                         "step, so 10x the NPO family's)", low=0.0, low_open=True, search=(1e-5, 3e-3), log=True)
    retain_loss: Literal["nll", "kl"] = hp("nll", "retain term: answer NLL, or per-token KL to the original",
                                           choices=("nll", "kl"))


def simnpo_loss(mean_nlls: torch.Tensor, beta: float, margin: float) -> torch.Tensor:
    """−(2/β)·mean log σ(β·ℓ̄ − γ_m) over per-example length-normalised NLLs ℓ̄ ``[N]``."""
    return -(2.0 / beta) * F.logsigmoid(beta * mean_nlls - margin).mean()


@register_method
class SimNPO(UnlearningMethod[SimNPOParams]):
    """Reference-free NPO on the length-normalised forget-answer NLL with a margin, plus a retain term."""

    name = "simnpo"
    paper = "Fan et al., Simplicity Prevails: Rethinking NPO for LLM Unlearning, arXiv 2410.07163"
    reference = "locuslab/open-unlearning src/trainer/unlearn/simnpo.py (from OPTML-Group/Unlearn-Simple)"
    access = DataAccess.FORGET | DataAccess.RETAIN
    Params = SimNPOParams
    tasks = frozenset({"llm"})

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        ref = reference_copy(model) if p.retain_loss == "kl" and p.alpha > 0 else None

        train_forget_retain(model, data, ctx, p,
                            lambda m, xf, yf: p.forget_coeff * simnpo_loss(mean_nll(m(xf), yf), p.beta, p.margin),
                            ref=ref, name=self.name)
        return model
