"""IdkPO: "I don't know" targets — preference optimisation with a refusal preferred over the forget answer.

For each forget question x with its answer y_f and a refusal y_idk (this class's own template strings, one drawn per
row per step), with sequence log-likelihood ratios r(y) = log π_θ(y|x) − log π_ref(y|x) (π_ref the frozen original):

    objective "dpo" (default):  L_f = −(2/β)·mean log σ(β·(r(y_idk) − r(y_f)))
    objective "nll":            L_f = mean ℓ̄_θ(y_idk|x)  (TOFU's "IDK" fine-tuning: token-mean NLL of the refusals)
    L = γ·L_f + α·L_r,

L_r the retain term on a paired retain batch (token-mean NLL, or per-token KL to π_ref). At θ = π_ref the DPO form's
gradient is ∇[ℓ_θ(y_idk) − ℓ_θ(y_f)]/N: descent on the refusal plus sequence-level ascent on the forget answer (tested).

Choice (brief: "pick the form"): DPO is the default — OpenUnlearning's IdkDPO (``configs/experiment/unlearn/tofu/
idk.yaml``: trainer ``DPO``, dataset ``QAwithIdkDataset`` with the refusal as ``alternate`` = preferred and the
original answer as dispreferred), the form TOFU's and NPO's papers compare against; the plain refusal fine-tune is
``objective=nll``. Other choices: rows without a prompt (biographies: no question to refuse) keep only the
dispreferred term (r(y_idk) := 0, i.e. NPO on that row); refusals are never the dataset's paraphrased or perturbed
answers (evaluation data).

Papers: Maini, Feng, Schwarzschild, Lipton, Kolter, "TOFU: A Task of Fictitious Unlearning for LLMs", COLM 2024,
arXiv 2401.06121 (IDK fine-tuning); Rafailov et al., "Direct Preference Optimization", NeurIPS 2023 (the loss); the
IdkDPO baseline of Zhang et al., NPO, arXiv 2404.05868. Reference: locuslab/open-unlearning
``src/trainer/unlearn/dpo.py``, ``src/trainer/utils.py:compute_dpo_loss``, ``src/data/qa.py:QAwithIdkDataset``,
``configs/trainer/DPO.yaml`` (β = 0.1, γ = 1, α = 1, NLL retain). Optimiser defaults re-scaled for a tiny GPT
(:class:`~expunge.methods._shared.lm.LMParams`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from expunge._hparams import hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.methods._shared.lm import (
    REFUSALS,
    LMParams,
    encode_refusals,
    mean_nll,
    reference_copy,
    refusal_rows,
    sequence_nll,
    train_forget_retain,
)
from expunge.methods.base import RunContext, UnlearningMethod, register_method


@dataclass(frozen=True, kw_only=True)
class IdkPOParams(LMParams):
    objective: Literal["dpo", "nll"] = hp("dpo", "dpo: refusal preferred over the forget answer (IdkDPO); nll: "
                                                 "fine-tune on the refusals (TOFU's IDK)", choices=("dpo", "nll"))
    beta: float = hp(0.1, "inverse temperature β of the DPO loss", low=0.0, low_open=True, search=(0.05, 1.0),
                     log=True)
    gamma: float = hp(1.0, "weight γ of the forget (preference) term", low=0.0, search=(0.1, 2.0))
    alpha: float = hp(1.0, "weight α of the retain term", low=0.0, search=(0.1, 10.0), log=True)
    retain_loss: Literal["nll", "kl"] = hp("nll", "retain term: answer NLL, or per-token KL to the original",
                                           choices=("nll", "kl"))
    lr: float = hp(5e-4, "AdamW learning rate (OpenUnlearning 1e-5 on 1-3B models; re-scaled for a tiny GPT: on "
                         "facts 1e-4 lost more retain probability than 5e-4, benchmarks/results/llm_methods_sweep.md)",
                   low=0.0, low_open=True, search=(1e-5, 3e-3), log=True)
    weight_decay: float = hp(0.01, "weight decay (OpenUnlearning's idk experiment: 0.01)", low=0.0)
    refusals: tuple[str, ...] = hp(REFUSALS, "refusal answers (comma-separated; words of the vocabulary)")


def dpo_loss(win_logratio: torch.Tensor, lose_logratio: torch.Tensor, beta: float) -> torch.Tensor:
    """−(2/β)·mean log σ(β·(r_win − r_lose)) over per-example log-likelihood ratios ``[N]``."""
    return -(2.0 / beta) * F.logsigmoid(beta * (win_logratio - lose_logratio)).mean()


@register_method
class IdkPO(UnlearningMethod[IdkPOParams]):
    """Prefer a refusal over the forget answer (DPO against the original; or fine-tune on refusals), plus retain."""

    name = "idkpo"
    paper = "TOFU IDK baseline (Maini et al., COLM 2024, arXiv 2401.06121) in DPO form (Rafailov et al., 2023)"
    reference = "locuslab/open-unlearning src/trainer/unlearn/dpo.py + src/data/qa.py:QAwithIdkDataset"
    access = DataAccess.FORGET | DataAccess.RETAIN
    Params = IdkPOParams
    tasks = frozenset({"llm"})

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        templates = encode_refusals(data.tokenizer, p.refusals)
        ref = reference_copy(model) if p.objective == "dpo" or p.retain_loss == "kl" else None
        generator = ctx.generator(salt=0x1D4)

        def forget_term(m: nn.Module, xf: torch.Tensor, yf: torch.Tensor) -> torch.Tensor:
            xi, yi, prompted = refusal_rows(xf, yf, templates, generator)
            if p.objective == "nll":
                keep = prompted.to(torch.float32)
                return (mean_nll(m(xi), yi) * keep).sum() / keep.sum().clamp_min(1)
            assert ref is not None
            with torch.no_grad():
                ref_idk, ref_forget = sequence_nll(ref(xi), yi), sequence_nll(ref(xf), yf)
            win = (ref_idk - sequence_nll(m(xi), yi)) * prompted.to(ref_idk.dtype)
            lose = ref_forget - sequence_nll(m(xf), yf)
            return dpo_loss(win, lose, p.beta)

        train_forget_retain(model, data, ctx, p, lambda m, xf, yf: p.gamma * forget_term(m, xf, yf), ref=ref,
                            name=self.name)
        return model
