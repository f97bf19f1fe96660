"""SalUn: random-label unlearning confined to the weights most salient for the forget set.

Paper: Fan, Liu, Zhang, Wei, Wong, Liu, "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency",
ICLR 2024, arXiv 2310.12508. Reference: OPTML-Group/Unlearn-Saliency ``Classification/generate_mask.py``
(``save_gradient_ratio``) and ``Classification/unlearn/RL.py`` (masked RL, with the weight-decay fix of PR #33).

1. Saliency, model in eval mode: g = Σ_batches ∇_θ(−CE_batch-mean) over D_f (signed sum, then |·|), batches of
   ``batch_size`` in the forget set's stored order (the sum does not depend on order). Rank all scalars of all
   parameters together; m = 1 on the top ``k`` fraction (floor(k·P) scalars; ties broken by parameter order).
   See :func:`expunge.methods._shared.saliency.saliency_mask`.
2. ``random_label`` training (fresh wrong labels each epoch on D_f, one shuffled joint pass over D_f(ỹ) ∪ D_r,
   :class:`~expunge.methods.random_label.RelabelledUnion`) in train mode with masked updates: grad ← m ⊙ grad, and
   after every optimiser step the m = 0 weights are put back to θ₀ and their optimiser state (momentum, Adam
   moments) zeroed. So the m = 0 weights end bit-identical to θ₀ — the pre-PR-#33 reference let weight decay and
   momentum move them — and k = 1 is ``random_label`` exactly (same seed).

Defaults (as ``random_label``; SalUn README, CIFAR-10 10% random): k = 0.5 (README ``mask/with_0.5.pt``), 10 epochs,
SGD lr 0.013, momentum 0.9, weight decay 5e-4, batch 256. Deliberate differences from the reference: the wrong labels
never equal y and the pass is always the joint shuffled one (see ``random_label``); the mask is built on the same
forget set inside the call rather than loaded from a file made by a separate script.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from expunge._hparams import hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.methods._shared.optim import optimizer_for
from expunge.methods._shared.saliency import MaskedUpdates, saliency_mask
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.methods.random_label import RandomLabelParams, RelabelledUnion
from expunge.train.loop import cross_entropy_loss, train_loop


@dataclass(frozen=True, kw_only=True)
class SalunParams(RandomLabelParams):
    k: float = hp(0.5, "fraction of scalars (top saliency) that may change; 1 = plain random_label", low=0.0,
                  low_open=True, high=1.0, search=(0.1, 0.9))


@register_method
class SalUn(UnlearningMethod[SalunParams]):
    """Random-label unlearning restricted to the top-k weights by forget-gradient saliency (others stay at θ₀)."""

    name = "salun"
    paper = "Fan et al., SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency, ICLR 2024, " \
            "arXiv 2310.12508"
    reference = "OPTML-Group/Unlearn-Saliency Classification/generate_mask.py, Classification/unlearn/RL.py"
    access = DataAccess.FORGET | DataAccess.RETAIN
    Params = SalunParams

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        mask = saliency_mask(model, data.forget_loader(p.batch_size, shuffle=False), p.k)
        union = RelabelledUnion(*data.forget_tensors(), *data.retain_tensors(), data.num_classes, p.batch_size,
                                ctx.seed)
        opt = optimizer_for(model, p)
        with MaskedUpdates(model, mask, opt) as masked:
            log = train_loop(model, union, cross_entropy_loss, opt, epochs=p.epochs, clip_grad_norm=p.clip_grad_norm,
                             after_step=masked.after_step, progress="salun" if ctx.progress else None)
        kept = sum(int(m.sum()) for m in mask.values())
        total = sum(m.numel() for m in mask.values())
        ctx.notes.update(steps=log.steps, mask_kept=kept, mask_share=kept / max(1, total),
                         skipped_nonfinite=log.skipped_nonfinite)
        return model
