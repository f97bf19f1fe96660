"""GradDiff: gradient ascent on forget answers plus descent on retain answers.

L = γ·(−NLL_f) + α·L_r, with NLL_f the token-mean answer loss of a forget batch and L_r, on the paired retain batch,
the token-mean NLL (``retain_loss="nll"``, default) or KL(π_ref ‖ π_θ) per answer token against the frozen original
(``retain_loss="kl"``; OpenUnlearning averages that KL over all positions, prompt and padding included — here over
answer tokens, see :mod:`expunge.methods._shared.lm`). One epoch is one pass over D_f (OpenUnlearning's
``anchor: forget``), retain batches cycled. With α = 0 it is ``llm_grad_ascent`` exactly (tested) — the optional
collapse guard included (``collapse_margin``, off by default here: the retain term is the guard).

Paper: Liu, Lin, Wang, Xiong, Kim, "Continual Learning and Private Unlearning", CoLLAs 2022; the GradDiff baseline of
Maini et al., "TOFU", COLM 2024, arXiv 2401.06121. Reference: locuslab/open-unlearning
``src/trainer/unlearn/grad_diff.py``, ``src/trainer/utils.py:compute_kl_divergence``, ``configs/trainer/GradDiff.yaml``
(γ = α = 1, NLL). Optimiser defaults re-scaled for a tiny GPT (:class:`~expunge.methods._shared.lm.LMParams`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from expunge._hparams import hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.methods._shared.lm import LMParams, collapse_guard, reference_copy, train_forget_retain
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.tasks.token_logprobs import lm_loss


@dataclass(frozen=True, kw_only=True)
class LLMGradDiffParams(LMParams):
    gamma: float = hp(1.0, "weight γ of the forget ascent term", low=0.0, search=(0.1, 2.0))
    alpha: float = hp(1.0, "weight α of the retain term", low=0.0, search=(0.1, 10.0), log=True)
    retain_loss: Literal["nll", "kl"] = hp("nll", "retain term: answer NLL, or per-token KL to the original",
                                           choices=("nll", "kl"))
    collapse_margin: float | None = hp(None, "stop after an epoch once the retain-subset mean NLL rose by more than "
                                             "this many nats (none = never)", low=0.0, low_open=True)
    guard_examples: int = hp(64, "retain rows the collapse guard watches (seeded subset)", low=1)


@register_method
class LLMGradDiff(UnlearningMethod[LLMGradDiffParams]):
    """γ·(−NLL on forget answers) + α·(NLL or KL-to-original on retain answers)."""

    name = "llm_grad_diff"
    paper = "Liu et al., Continual Learning and Private Unlearning, CoLLAs 2022; TOFU (Maini et al., COLM 2024)"
    reference = "locuslab/open-unlearning src/trainer/unlearn/grad_diff.py"
    access = DataAccess.FORGET | DataAccess.RETAIN
    Params = LLMGradDiffParams
    tasks = frozenset({"llm"})

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        ref = reference_copy(model) if p.retain_loss == "kl" and p.alpha > 0 else None
        guard = collapse_guard(model, data, p.collapse_margin, p.guard_examples, ctx.seed)

        # α = 0: no retain forward at all (GA exactly)
        train_forget_retain(model, data, ctx, p, lambda m, xf, yf: -p.gamma * lm_loss(m(xf), yf), ref=ref,
                            name=self.name, on_epoch_end=guard)
        ctx.notes.update(collapse_guard=None if guard is None else guard.tripped)
        return model
