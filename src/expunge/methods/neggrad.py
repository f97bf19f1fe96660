"""NegGrad: gradient ascent on the forget set.

θ ← θ − η ∇_θ(−CE(f_θ(x_f), y_f)). The objective is unbounded, so the gradient norm is clipped (default 1.0), non-finite
steps are skipped (the trainer's guard), and training can stop early once forget accuracy falls to
``stop_at_forget_acc`` (off by default: the paper runs a fixed number of epochs).

Paper: Golatkar et al., "Eternal Sunshine of the Spotless Net", CVPR 2020 (baseline); "GA" in Jia et al. NeurIPS 2023.
Defaults: Unlearn-Sparse README (5 epochs, lr 1e-4, SGD momentum 0.9, wd 5e-4); maintainers advise 5e-4–1e-3 (SalUn
issue #8) — tune per model (``expunge tune``).
Reference: OPTML-Group/Unlearn-Saliency ``Classification/unlearn/GA.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from expunge._hparams import hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batch
from expunge.methods._shared.optim import GradientParams, optimizer_for
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.models.inference import accuracy
from expunge.train.loop import train_loop


@dataclass(frozen=True, kw_only=True)
class NegGradParams(GradientParams):
    epochs: int = hp(5, "passes over the forget set", low=0, search=(1, 10))
    lr: float = hp(1e-4, "learning rate", low=0.0, low_open=True, search=(1e-5, 1e-2), log=True)
    batch_size: int = hp(256, "mini-batch size", low=1)
    clip_grad_norm: float | None = hp(1.0, "gradient-norm clip (ascent guard)")
    stop_at_forget_acc: float | None = hp(None, "stop after an epoch once forget accuracy <= this (None = never)")


@register_method
class NegGrad(UnlearningMethod[NegGradParams]):
    """Gradient ascent on the forget-set cross-entropy (clipped, with a non-finite guard)."""

    name = "neggrad"
    paper = "Golatkar et al., CVPR 2020 (NegGrad baseline); 'GA' of Jia et al., NeurIPS 2023"
    reference = "OPTML-Group/Unlearn-Saliency Classification/unlearn/GA.py"
    access = DataAccess.FORGET
    Params = NegGradParams

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params

        def ascent(m: nn.Module, batch: Batch) -> torch.Tensor:
            return -F.cross_entropy(m(batch[0]), batch[1])

        stop = None
        if p.stop_at_forget_acc is not None:
            xf, yf = data.forget_tensors()
            target = p.stop_at_forget_acc

            def stop(_: int) -> bool:
                return accuracy(model, xf, yf) <= target

        log = train_loop(model, data.forget_loader(p.batch_size), ascent, optimizer_for(model, p), epochs=p.epochs,
                         clip_grad_norm=p.clip_grad_norm, on_epoch_end=stop,
                         progress="neggrad" if ctx.progress else None)
        ctx.notes.update(steps=log.steps, stopped=log.stopped, skipped_nonfinite=log.skipped_nonfinite)
        return model
