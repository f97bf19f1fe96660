"""Boundary Shrink: relabel each forget example to the class an FGSM step of the original model pushes it into.

Paper: Chen, Gao, Zhang, Yu, Wang, "Boundary Unlearning: Rapid Forgetting of Deep Networks via Shifting the Decision
Space", CVPR 2023, arXiv 2303.11570. Reference: OPTML-Group/Unlearn-Saliency ``Classification/unlearn/boundary_sh.py``
(``FGSM_perturb``, ``boundary_shrink_iter``); the authors' own repository was not read.

1. Neighbour labels, on a frozen copy f₀ of the original in eval mode: x′ = clip(x + ε·sign(∇_x CE(f₀(x), y))),
   y_nb = argmax f₀(x′) — the "nearest but incorrect" class when the attack succeeds.
2. Minimise CE(f_θ(x), y_nb) on D_f (train mode, ``epochs`` shuffled passes).

f₀ never changes and the attack is deterministic (no random start; in eval mode each example's input gradient has
the sign of its own loss's gradient whatever the batch), so y_nb is computed once for the whole forget set before
training; the reference recomputes it per batch with the same result. This also makes ``skip_failed`` exact: with it,
examples whose attack failed (y_nb = y, where the step would *reinforce* y) are dropped; by default (False, faithful
to the reference) they are kept. ``ctx.notes["failed_attack_share"]`` records the share of y_nb = y either way.

ε and input units. The paper's ε = 0.1 is in pixel units ([0, 1] images; "hard-coded in the paper" per the
reference), but expunge models see normalised inputs (digits: pixels/16, already [0, 1]; Fashion-MNIST:
(p/255 − 0.286)/0.353). Any such normalisation is affine, x = a + (b − a)·pixel, so we take ``input_range`` = (a, b),
the model-input values of pixel 0 and pixel 1, and apply the step as ε·(b − a) and the clip as [a, b]: exactly the
paper's pixel-space attack followed by normalisation. ``input_range=None`` (default) estimates (a, b) as the min and
max over the forget set (exact for digits and for Fashion-MNIST whenever the forget set contains a black and a
white pixel); pass it explicitly otherwise, e.g. ``input_range=-0.8102,2.0227`` for Fashion-MNIST. The reference's
rounding of x′ to multiples of 1/255 (8-bit images) is not applied: our inputs are not 8-bit (digits has 17 levels)
and the rounding only changes x′ by < 1/510.

Defaults: ε = 0.1 (paper, via the reference); optimiser and budget are the reference harness's defaults
(Unlearn-Saliency ``arg_parser.py``: SGD lr 0.01, momentum 0.9, weight decay 5e-4, 10 epochs, batch 256); the paper's
own lr/epochs were not verified — tune per model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from expunge._hparams import hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batches
from expunge.methods._shared.optim import GradientParams, optimizer_for
from expunge.methods._shared.teacher_kl import frozen_copy
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.models.inference import eval_mode
from expunge.train.loop import cross_entropy_loss, train_loop


@dataclass(frozen=True, kw_only=True)
class BoundaryShrinkParams(GradientParams):
    eps: float = hp(0.1, "FGSM step in pixel units (fraction of the [0,1] pixel range)", low=0.0, low_open=True,
                    search=(0.01, 0.5), log=True)
    input_range: tuple[float, ...] | None = hp(None, "model-input values of pixel 0 and pixel 1 (a,b); None = the "
                                                     "dataset's, else forget-set min,max")
    skip_failed: bool = hp(False, "drop forget examples whose attack failed (y_nb = y)")

    def validate(self) -> None:
        r = self.input_range
        if r is not None and (len(r) != 2 or not r[0] < r[1]):
            self._fail("input_range", r, "two numbers low,high with low < high")


@torch.no_grad()
def _argmax(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).argmax(dim=1)


def neighbour_labels(f0: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, low: float, high: float,
                     batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """FGSM neighbours x′ = clip(x + ε(b−a)·sign ∇_x CE(f₀(x), y), a, b) and y_nb = argmax f₀(x′); f₀ is put in
    eval mode (its mode is restored) and its parameters receive no gradient."""
    xs, ys = [], []
    with eval_mode(f0):
        for s in range(0, len(x), batch_size):
            xb = x[s:s + batch_size].detach().clone().requires_grad_(True)
            (gx,) = torch.autograd.grad(F.cross_entropy(f0(xb), y[s:s + batch_size]), xb)
            # pixel-space ε and [0,1] clip mapped to input units; no 1/255 rounding (the reference assumes raw
            # 8-bit pixels, wrong for normalised inputs)
            x_adv = (xb.detach() + eps * (high - low) * gx.sign()).clamp(low, high)
            xs.append(x_adv)
            ys.append(_argmax(f0, x_adv))
    return torch.cat(xs), torch.cat(ys)


@register_method
class BoundaryShrink(UnlearningMethod[BoundaryShrinkParams]):
    """Fine-tune the forget set towards the labels of its FGSM neighbours under the original model."""

    name = "boundary_shrink"
    paper = "Chen et al., Boundary Unlearning, CVPR 2023, arXiv 2303.11570"
    reference = "OPTML-Group/Unlearn-Saliency Classification/unlearn/boundary_sh.py"
    access = DataAccess.FORGET
    Params = BoundaryShrinkParams

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        xf, yf = data.forget_tensors()
        declared = p.input_range if p.input_range is not None else data.input_range
        low, high = declared if declared is not None else (float(xf.min()), float(xf.max()))
        if not low < high:
            raise ValueError(f"boundary_shrink: the forget set is constant ({low}); pass input_range explicitly")
        f0 = frozen_copy(model)  # the original: the attack never sees the model being trained
        _, y_nb = neighbour_labels(f0, xf, yf, eps=p.eps, low=low, high=high, batch_size=p.batch_size)
        failed = y_nb == yf
        ctx.notes.update(failed_attack_share=float(failed.float().mean()), input_range=[low, high])
        keep = ~failed if p.skip_failed else torch.ones_like(failed)
        if not bool(keep.any()):
            ctx.notes.update(steps=0, trained_on=0)
            return model
        batches = Batches(xf[keep], y_nb[keep], batch_size=p.batch_size, seed=ctx.seed)
        log = train_loop(model, batches, cross_entropy_loss, optimizer_for(model, p), epochs=p.epochs,
                         clip_grad_norm=p.clip_grad_norm, progress="boundary_shrink" if ctx.progress else None)
        ctx.notes.update(steps=log.steps, trained_on=int(keep.sum()), skipped_nonfinite=log.skipped_nonfinite)
        return model
