"""Bad Teacher: distil from a competent teacher on retained data and from an incompetent one on forget data.

Paper: Chundawat, Tarun, Mandal, Kankanhalli, "Can Bad Teaching Induce Forgetting? Unlearning in Deep Networks using
an Incompetent Teacher", AAAI 2023, arXiv 2205.08096. Reference: vikram2000b/bad-teaching-unlearning ``unlearn.py``
(``UnlearnerLoss``, ``blindspot_unlearner``); defaults from the SSD harness that runs it
(if-loops/selective-synaptic-dampening ``src/forget_full_class_strategies.py:blindspot``).

1. Competent teacher T_s = frozen original (eval mode); incompetent teacher T_d = a *freshly initialised* model of the
   same architecture, built by the model factory with a seed derived from ``ctx.seed`` (never a reset of a live
   module); student S = the original's copy, trained in train() mode.
2. Data: D_f (flag 1) ∪ D_r′ (flag 0), D_r′ a seeded random 30% of D_r, shuffled together.
3. Per row target t = softmax(T_d(x)/τ) if flag 1 else softmax(T_s(x)/τ); loss = KL(t ‖ softmax(S(x)/τ)) summed over
   classes, averaged over the batch.

Defaults (SSD harness, ResNet-18): τ = 1, Adam lr 1e-4 (no weight decay), 1 epoch, batch 256, |D_r′| = 30% of D_r.
Design: the teachers are frozen and in eval mode, so their targets are computed once for the whole union (the
reference recomputes them per batch; identical values, less work when epochs > 1).
Deviation: the reference's ``F.kl_div`` uses the default ``reduction="mean"`` (divides by batch × classes); we use the
KL as defined, "batchmean". Under Adam this only rescales the loss by 1/C (Adam is nearly scale-invariant); under SGD
it is the correct magnitude.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from expunge._hparams import hp
from expunge._seeds import derive_seed
from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batch, Batches
from expunge.errors import ExpungeError
from expunge.methods._shared.optim import GradientParams, optimizer_for
from expunge.methods._shared.teacher_kl import frozen_copy, kl_to_targets, soft_targets
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.models.inference import predict_logits
from expunge.train.loop import train_loop


@dataclass(frozen=True, kw_only=True)
class BadTeacherParams(GradientParams):
    epochs: int = hp(1, "passes over D_f ∪ D_r′", low=1, search=(1, 5))
    lr: float = hp(1e-4, "learning rate", low=0.0, low_open=True, search=(1e-5, 1e-2), log=True)
    optimizer: Literal["sgd", "adam", "adamw"] = hp("adam", "optimiser", choices=("sgd", "adam", "adamw"))
    weight_decay: float = hp(0.0, "weight decay (the reference's Adam has none)", low=0.0)
    batch_size: int = hp(256, "mini-batch size (128 for ViT in the SSD harness)", low=1)
    temperature: float = hp(1.0, "KL temperature τ", low=0.0, low_open=True, search=(0.5, 8.0), log=True)
    retain_fraction: float = hp(0.3, "share of D_r used as D_r′ (seeded random subset)", low=0.0, high=1.0,
                                low_open=True, search=(0.05, 1.0))


def bad_teacher_targets(competent: nn.Module, incompetent: nn.Module, x: torch.Tensor, is_forget: torch.Tensor,
                        temperature: float) -> torch.Tensor:
    """Row-wise target distribution: the incompetent teacher's on forget rows, the competent teacher's elsewhere.
    Both teachers must be in eval mode (the caller's frozen copies). Each teacher runs only on the rows whose targets
    it gives (the reference runs both on every batch and discards half of the outputs: twice the teacher cost)."""
    forget = is_forget.bool()
    bad = soft_targets(predict_logits(incompetent, x[forget]), temperature) if forget.any() else None
    good = soft_targets(predict_logits(competent, x[~forget]), temperature) if (~forget).any() else None
    like = bad if bad is not None else good
    assert like is not None  # x has at least one row
    targets = like.new_empty((len(x), like.shape[1]))  # the teachers' dtype, not the global default
    if bad is not None:
        targets[forget] = bad
    if good is not None:
        targets[~forget] = good
    return targets


def _loss(temperature: float):  # type: ignore[no-untyped-def]
    def loss(model: nn.Module, batch: Batch) -> torch.Tensor:
        x, targets = batch
        return kl_to_targets(model(x), targets, temperature)

    return loss


@register_method
class BadTeacher(UnlearningMethod[BadTeacherParams]):
    """Student distils a random-init teacher on D_f and the original on a 30% retain subset (KL)."""

    name = "bad_teacher"
    paper = "Chundawat et al., Can Bad Teaching Induce Forgetting?, AAAI 2023, arXiv 2205.08096"
    reference = "vikram2000b/bad-teaching-unlearning unlearn.py:blindspot_unlearner"
    access = DataAccess.FORGET | DataAccess.RETAIN_SUBSET
    Params = BadTeacherParams

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        if ctx.model_spec is None:
            raise ExpungeError("bad_teacher needs the original's model spec (RunContext.model_spec) to build the "
                               "incompetent teacher")
        competent = frozen_copy(model)
        incompetent = frozen_copy(ctx.model_spec.build(seed=derive_seed(ctx.seed, "bad-teacher-incompetent")))
        xf, _ = data.forget_tensors()
        subset = data.retain_subset_loader(p.batch_size, fraction=p.retain_fraction, shuffle=False)
        xr = torch.cat([b[0] for b in subset])
        x = torch.cat([xf, xr])
        flags = torch.cat([torch.ones(len(xf), dtype=torch.bool), torch.zeros(len(xr), dtype=torch.bool)])
        targets = bad_teacher_targets(competent, incompetent, x, flags, p.temperature)
        union = Batches(x, targets, batch_size=p.batch_size, shuffle=True, seed=ctx.seed)
        log = train_loop(model, union, _loss(p.temperature), optimizer_for(model, p), epochs=p.epochs,
                         clip_grad_norm=p.clip_grad_norm, progress="bad_teacher" if ctx.progress else None)
        ctx.notes.update(steps=log.steps, n_forget=len(xf), n_retain_subset=len(xr),
                         skipped_nonfinite=log.skipped_nonfinite)
        return model
