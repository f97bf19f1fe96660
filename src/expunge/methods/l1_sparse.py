"""ℓ1-sparse unlearning: fine-tune on the retain set with a decaying ℓ1 penalty ("sparsity-aware unlearning").

Paper: Jia, Liu, Ram, Yao, Liu, Liu, Sharma, Liu, "Model Sparsity Can Simplify Machine Unlearning", NeurIPS 2023,
arXiv 2304.04934. Reference: OPTML-Group/Unlearn-Sparse ``unlearn/FT.py`` (``FT_l1`` / ``FT_iter(with_l1=True)``,
called by ``unlearn/FT_prune.py:FT_prune``; the same file exists in Unlearn-Saliency).

Loss on a retain batch in epoch t (0-based): CE + γ_t·‖θ‖₁ with ‖θ‖₁ over *all* parameters (biases and BatchNorm
affine parameters included, as in the reference), and the linear decay

    γ_t = γ·(1 − t / (E − E₀))  for t < E − E₀,   else 0          (E = ``epochs``, E₀ = ``no_l1_epochs``)

so the penalty fades to 0 and the last E₀ epochs are plain fine-tuning. Training is otherwise ``finetune``'s: the same
retain batches, optimiser and loop, and with γ = 0 (or E₀ ≥ E) the run is ``finetune`` bit for bit — the penalty term
is skipped, not added as 0.

Choices where the reference is silent or broken: ``no_l1_epochs`` is read by the reference but never declared in
either repository's ``arg_parser.py`` (AttributeError); we default it to 0. When E₀ = E the Unlearn-Sparse copy uses
a constant γ (an ``elif`` branch); we use γ_t = 0 (the formula above). The "prune first, then unlearn" variant
(one-shot magnitude pruning to ~95% sparsity before fine-tuning) is a different method and not part of this one.
Defaults: Unlearn-Sparse README (``--unlearn FT_prune --unlearn_lr 0.01 --unlearn_epochs 10``) with the harness's SGD
(momentum 0.9, weight decay 5e-4, batch 256). γ: the README leaves ``--alpha`` to the user (its parser default 0.2
belongs to the Fisher baselines); we default to 5e-4, inside the tuning range 1e-5–1e-3 we search (paper value not
verified here) — tune it per model (``expunge tune``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from expunge._hparams import hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batch
from expunge.methods._shared.optim import GradientParams, optimizer_for
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.train.loop import cross_entropy_loss, train_loop


@dataclass(frozen=True, kw_only=True)
class L1SparseParams(GradientParams):
    gamma: float = hp(5e-4, "initial l1 coefficient gamma (decays linearly to 0)", low=0.0, search=(1e-5, 1e-3),
                      log=True)
    no_l1_epochs: int = hp(0, "final epochs without the l1 term (E0)", low=0)


def l1_coefficient(gamma: float, epoch: int, epochs: int, no_l1_epochs: int) -> float:
    """γ_t = γ·(1 − t/(E − E₀)) for t < E − E₀, else 0."""
    active = epochs - no_l1_epochs
    # E₀ ≥ E gives 0 throughout (Unlearn-Sparse's E₀ = E branch uses a constant γ; its parser never declares E₀)
    return gamma * (1.0 - epoch / active) if epoch < active else 0.0


def l1_norm(model: nn.Module) -> torch.Tensor:
    return sum((p.abs().sum() for p in model.parameters()), torch.zeros(()))


@register_method
class L1Sparse(UnlearningMethod[L1SparseParams]):
    """Fine-tune on the retain set with an l1 penalty whose weight decays linearly to zero."""

    name = "l1_sparse"
    paper = "Jia et al., Model Sparsity Can Simplify Machine Unlearning, NeurIPS 2023, arXiv 2304.04934"
    reference = "OPTML-Group/Unlearn-Sparse unlearn/FT.py:FT_l1 (via unlearn/FT_prune.py:FT_prune)"
    access = DataAccess.RETAIN
    Params = L1SparseParams

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        state = {"epoch": 0}
        gammas: list[float] = []

        def loss(m: nn.Module, batch: Batch) -> torch.Tensor:
            ce = cross_entropy_loss(m, batch)
            g = l1_coefficient(p.gamma, state["epoch"], p.epochs, p.no_l1_epochs)
            return ce + g * l1_norm(m) if g > 0 else ce

        def next_epoch(epoch: int) -> None:
            gammas.append(l1_coefficient(p.gamma, epoch, p.epochs, p.no_l1_epochs))
            state["epoch"] = epoch + 1

        l1_before = float(l1_norm(model).detach())
        log = train_loop(model, data.retain_loader(p.batch_size), loss, optimizer_for(model, p), epochs=p.epochs,
                         clip_grad_norm=p.clip_grad_norm, on_epoch_end=next_epoch,
                         progress="l1_sparse" if ctx.progress else None)
        ctx.notes.update(steps=log.steps, epoch_losses=log.epoch_losses, gammas=gammas, l1_before=l1_before,
                         l1_after=float(l1_norm(model).detach()))
        return model
