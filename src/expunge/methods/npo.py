"""NPO: Negative Preference Optimization — DPO with only a dispreferred answer (the forget answer).

With the sequence log-likelihood ratio r = log π_θ(y|x) − log π_ref(y|x) = ℓ_ref(y|x) − ℓ_θ(y|x) (ℓ the summed
answer-token NLL, π_ref the frozen original):

    L_f = −(2/β)·mean log σ(−β·r),   L = γ·L_f + α·L_r,

L_r the retain term on a paired retain batch (token-mean NLL by default, or per-token KL to π_ref: NPO+RT / NPO+KL).
dL_f/dr = 2σ(βr)/N per example: at θ = π_ref it is 1/N, so the first step is sequence-level gradient ascent
(∇L_f = −mean ∇ℓ_θ, tested), and as π_θ(y|x) falls below π_ref the weight 2σ(βr) → 0 — the slow-down that keeps NPO
from GA's collapse (the paper's Theorem). One epoch is one pass over D_f, retain batches cycled (OpenUnlearning's
``anchor: forget``).

Paper: Zhang, Lin, Bai, Mei, "Negative Preference Optimization: From Catastrophic Collapse to Effective Unlearning",
COLM 2024, arXiv 2404.05868. Reference: locuslab/open-unlearning ``src/trainer/unlearn/npo.py`` and
``src/trainer/utils.py:compute_dpo_loss`` (``win_inputs=None``), ``configs/trainer/NPO.yaml``: β = 0.1, γ = 1, α = 1,
NLL retain (the class default β = 1 differs; the config's 0.1 is used). Optimiser defaults re-scaled for a tiny GPT
(:class:`~expunge.methods._shared.lm.LMParams`); β is scale-free and kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from expunge._hparams import hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.methods._shared.lm import LMParams, reference_copy, sequence_nll, train_forget_retain
from expunge.methods.base import RunContext, UnlearningMethod, register_method


@dataclass(frozen=True, kw_only=True)
class NPOParams(LMParams):
    beta: float = hp(0.1, "inverse temperature β of the NPO loss", low=0.0, low_open=True, search=(0.05, 1.0),
                     log=True)
    gamma: float = hp(1.0, "weight γ of the NPO forget term", low=0.0, search=(0.1, 2.0))
    alpha: float = hp(1.0, "weight α of the retain term (0 = plain NPO, no retain data read)", low=0.0,
                      search=(0.1, 10.0), log=True)
    retain_loss: Literal["nll", "kl"] = hp("nll", "retain term: answer NLL (NPO+RT), or per-token KL to the "
                                                  "original (NPO+KL)", choices=("nll", "kl"))


def npo_loss(logratio: torch.Tensor, beta: float) -> torch.Tensor:
    """−(2/β)·mean log σ(−β·r) for per-example log-likelihood ratios r = log π_θ − log π_ref ``[N]``."""
    return -(2.0 / beta) * F.logsigmoid(-beta * logratio).mean()


@register_method
class NPO(UnlearningMethod[NPOParams]):
    """Negative preference optimisation on forget answers against the frozen original, plus a retain term."""

    name = "npo"
    paper = "Zhang, Lin, Bai, Mei, Negative Preference Optimization, COLM 2024, arXiv 2404.05868"
    reference = "locuslab/open-unlearning src/trainer/unlearn/npo.py + src/trainer/utils.py:compute_dpo_loss"
    access = DataAccess.FORGET | DataAccess.RETAIN
    Params = NPOParams
    tasks = frozenset({"llm"})

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        ref = reference_copy(model)

        def forget_term(m: nn.Module, xf: torch.Tensor, yf: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                nll_ref = sequence_nll(ref(xf), yf)
            return npo_loss(nll_ref - sequence_nll(m(xf), yf), p.beta)

        train_forget_retain(model, data, ctx, p, lambda m, xf, yf: p.gamma * forget_term(m, xf, yf), ref=ref,
                            name=self.name)
        return model
