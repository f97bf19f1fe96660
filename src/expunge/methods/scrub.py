"""SCRUB: alternate max-steps (move away from the teacher on D_f) and min-steps (stay close to it on D_r).

Paper: Kurmanji, Triantafillou, Hayes, Triantafillou, "Towards Unbounded Machine Unlearning", NeurIPS 2023,
arXiv 2302.09880. Reference: meghdadk/SCRUB ``large_scale_unlearning.ipynb`` (the SCRUB cell and its ``args``) with
``thirdparty/repdistiller/helper/loops.py:train_distill``, ``distiller_zoo/KD.py:DistillKL`` and
``helper/util.py:adjust_learning_rate``.

Teacher = frozen original in eval mode; student = the original's copy in train mode. With
KL_τ(s, t) = τ²·KL(softmax(t/τ) ‖ softmax(s/τ)) (summed over classes, mean over the batch), for epoch e = 1..E:
(a) if e ≤ msteps, one pass over D_f minimising −KL_τ (max-step); (b) one pass over D_r minimising γ·CE + α·KL_τ
(min-step). One SGD optimiser (momentum carried across passes, as in the reference); its learning rate at epoch e is
lr·rate^#{d ∈ lr_decay_epochs : e > d}.

Defaults — large-scale notebook: E = 3, msteps = 2, τ = 4, SGD lr 5e-4, momentum 0.9, wd 5e-4, decay ×0.1 at
[3, 5, 9], α = 0.001, γ = 0.99, retain batch 128, forget batch 32. The small-scale notebook's preset (E = 10,
msteps = 3, τ = 2, α = 0.5, γ = 1) is ``SMALL_SCALE``. The reference's β (weight of an extra, non-KL distillation
term) is 0 with ``distill='kd'`` and is not exposed; SCRUB+R (rewinding) is not implemented.
Deviation: the max-step is gradient *ascent* on an unbounded objective, so its gradient norm is clipped
(``clip_grad_norm``, default 1.0, the project's ascent guard); the reference clips nothing (its ``clip_grad_value_``
line is commented out). Min-steps are not clipped. ``clip_grad_norm=none`` restores the reference behaviour.
Note: at s = t the KL gradient is zero, so on a model without BatchNorm/dropout the first max-step only moves a student
that weight decay (or a min-step) has already nudged off the teacher; with BN in train() mode s ≠ t from the start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from expunge._hparams import hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batch
from expunge.methods._shared.optim import GradientParams, optimizer_for
from expunge.methods._shared.teacher_kl import distill_kl, frozen_copy
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.train.loop import train_loop


@dataclass(frozen=True, kw_only=True)
class ScrubParams(GradientParams):
    epochs: int = hp(3, "epochs E (each: an optional max-step pass, then a min-step pass)", low=1, search=(1, 10))
    msteps: int = hp(2, "epochs (the first ones) that start with a max-step pass over D_f", low=0, search=(0, 5))
    lr: float = hp(5e-4, "SGD learning rate", low=0.0, low_open=True, search=(1e-4, 5e-2), log=True)
    weight_decay: float = hp(5e-4, "weight decay", low=0.0)
    batch_size: int = hp(128, "retain (min-step) batch size", low=1)
    forget_batch_size: int = hp(32, "forget (max-step) batch size", low=1)
    temperature: float = hp(4.0, "distillation temperature τ", low=0.0, low_open=True, search=(1.0, 8.0))
    alpha: float = hp(0.001, "weight α of the KL term in the min-step", low=0.0, search=(1e-3, 1.0), log=True)
    gamma: float = hp(0.99, "weight γ of the CE term in the min-step", low=0.0, search=(0.1, 1.0))
    lr_decay_epochs: tuple[int, ...] = hp((3, 5, 9), "decay the lr after these epochs (step schedule)", low=1)
    lr_decay_rate: float = hp(0.1, "multiplicative lr decay at each listed epoch", low=0.0, low_open=True,
                                high=1.0)  # 0 would zero the lr after the first listed epoch
    clip_grad_norm: float | None = hp(1.0, "gradient-norm clip of the max-steps (ascent guard; none = reference)",
                                      low=0.0, low_open=True)


SMALL_SCALE = {"epochs": 10, "msteps": 3, "temperature": 2.0, "alpha": 0.5, "gamma": 1.0}  # small-scale notebook


def scrub_lr(epoch: int, p: ScrubParams) -> float:
    """Learning rate of 1-based ``epoch``: lr·rate^(number of decay epochs strictly before it)."""
    return p.lr * p.lr_decay_rate ** sum(epoch > d for d in p.lr_decay_epochs)


def max_step_loss(teacher: nn.Module, temperature: float) -> Callable[[nn.Module, Batch], torch.Tensor]:
    def loss(model: nn.Module, batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            t = teacher(batch[0])
        return -distill_kl(model(batch[0]), t, temperature)

    return loss


def min_step_loss(teacher: nn.Module, p: ScrubParams) -> Callable[[nn.Module, Batch], torch.Tensor]:
    def loss(model: nn.Module, batch: Batch) -> torch.Tensor:
        x, y = batch
        with torch.no_grad():
            t = teacher(x)
        s = model(x)
        return p.gamma * F.cross_entropy(s, y) + p.alpha * distill_kl(s, t, p.temperature)

    return loss


@register_method
class Scrub(UnlearningMethod[ScrubParams]):
    """Teacher–student: maximise KL to the original on D_f, minimise CE + KL on D_r, alternating."""

    name = "scrub"
    paper = "Kurmanji et al., Towards Unbounded Machine Unlearning, NeurIPS 2023, arXiv 2302.09880"
    reference = "meghdadk/SCRUB large_scale_unlearning.ipynb + thirdparty/repdistiller/helper/loops.py:train_distill"
    access = DataAccess.FORGET | DataAccess.RETAIN
    Params = ScrubParams

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        teacher = frozen_copy(model)
        opt = optimizer_for(model, p)
        forget, retain = data.forget_loader(p.forget_batch_size), data.retain_loader(p.batch_size)
        max_loss, min_loss = max_step_loss(teacher, p.temperature), min_step_loss(teacher, p)
        steps_max = steps_min = skipped = 0
        for epoch in range(1, p.epochs + 1):
            for group in opt.param_groups:
                group["lr"] = scrub_lr(epoch, p)
            if epoch <= p.msteps:
                log = train_loop(model, forget, max_loss, opt, clip_grad_norm=p.clip_grad_norm,
                                 progress=f"scrub max {epoch}" if ctx.progress else None)
                steps_max, skipped = steps_max + log.steps, skipped + log.skipped_nonfinite
            log = train_loop(model, retain, min_loss, opt, progress=f"scrub min {epoch}" if ctx.progress else None)
            steps_min, skipped = steps_min + log.steps, skipped + log.skipped_nonfinite
        ctx.notes.update(steps_max=steps_max, steps_min=steps_min, skipped_nonfinite=skipped)
        return model
