"""NegGrad+: descent on the retain set, ascent on the forget set, in one weighted loss.

One epoch is one pass over D_r; each retain batch is paired with the next forget batch (the forget loader is cycled):
L = β·CE(retain batch) − (1 − β)·CE(forget batch).

Paper: Kurmanji, Triantafillou, Hayes, Triantafillou, "Towards Unbounded Machine Unlearning", NeurIPS 2023,
arXiv 2302.09880. Defaults from the SCRUB notebooks: β = 0.95, 10 epochs, lr 0.01, SGD momentum 0.9, wd 5e-4.
Reference: meghdadk/SCRUB ``thirdparty/repdistiller/helper/loops.py:train_negrad``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from expunge._hparams import hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batch, PairedBatches
from expunge.methods._shared.optim import GradientParams, optimizer_for
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.train.loop import train_loop


@dataclass(frozen=True, kw_only=True)
class NegGradPlusParams(GradientParams):
    beta: float = hp(0.95, "weight of the retain loss (1 - beta on the forget ascent)", low=0.0, high=1.0,
                     search=(0.5, 0.999))
    batch_size: int = hp(128, "mini-batch size (retain and forget)", low=1)
    clip_grad_norm: float | None = hp(1.0, "gradient-norm clip (ascent guard)", low=0.0, low_open=True)




@register_method
class NegGradPlus(UnlearningMethod[NegGradPlusParams]):
    """β·CE on retain batches minus (1−β)·CE on paired forget batches."""

    name = "neggrad_plus"
    paper = "Kurmanji et al., Towards Unbounded Machine Unlearning, NeurIPS 2023, arXiv 2302.09880"
    reference = "meghdadk/SCRUB thirdparty/repdistiller/helper/loops.py:train_negrad"
    access = DataAccess.FORGET | DataAccess.RETAIN
    Params = NegGradPlusParams

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params

        def loss(m: nn.Module, batch: Batch) -> torch.Tensor:
            xr, yr, xf, yf = batch
            return p.beta * F.cross_entropy(m(xr), yr) - (1.0 - p.beta) * F.cross_entropy(m(xf), yf)

        paired = PairedBatches(data.retain_loader(p.batch_size), data.forget_loader(p.batch_size))
        log = train_loop(model, paired, loss, optimizer_for(model, p), epochs=p.epochs,
                         clip_grad_norm=p.clip_grad_norm, progress="neggrad_plus" if ctx.progress else None)
        ctx.notes.update(steps=log.steps, skipped_nonfinite=log.skipped_nonfinite)
        return model
