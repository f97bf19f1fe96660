"""Random labels: train on the forget set with wrong labels, jointly with the retain set.

Each epoch draws, for every forget example, a label ỹ uniformly from the *other* classes {0..C−1} \\ {y} (fresh each
epoch), then makes one shuffled pass over D_f(ỹ) ∪ D_r with cross-entropy.

Paper: Golatkar et al., CVPR 2020 / Graves et al., AAAI 2021 ("RL" in Fan et al., SalUn, ICLR 2024, arXiv 2310.12508).
Defaults: SalUn README, CIFAR-10 10% random: 10 epochs, SGD lr 0.013, momentum 0.9, wd 5e-4, batch 256.
Reference: OPTML-Group/Unlearn-Saliency ``Classification/unlearn/RL.py``. Differences on purpose: the reference draws
labels from *all* classes (ỹ may equal y) — ours never does; the reference's CIFAR-10 branch makes a forget pass then a
retain pass while its CIFAR-100 branch makes one joint pass — ours always makes the joint shuffled pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from expunge._hparams import hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batches
from expunge.methods._shared.optim import GradientParams, optimizer_for
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.train.loop import cross_entropy_loss, train_loop


@dataclass(frozen=True, kw_only=True)
class RandomLabelParams(GradientParams):
    lr: float = hp(0.013, "learning rate", low=0.0, low_open=True, search=(1e-4, 5e-2), log=True)


def other_labels(y: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform labels different from ``y``: y + U{1..C−1} mod C."""
    shift = torch.randint(1, num_classes, y.shape, generator=generator)
    return (y + shift) % num_classes


class RelabelledUnion:
    """D_f with fresh wrong labels each epoch ∪ D_r, shuffled together. Re-iterable; used by SalUn too."""

    def __init__(self, xf: torch.Tensor, yf: torch.Tensor, xr: torch.Tensor, yr: torch.Tensor, num_classes: int,
                 batch_size: int, seed: int) -> None:
        self.xf, self.yf, self.xr, self.yr = xf, yf, xr, yr
        self.num_classes, self.batch_size, self.seed = num_classes, batch_size, seed
        self.epoch = 0
        self._gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-(len(self.yf) + len(self.yr)) // self.batch_size)

    def __iter__(self):  # type: ignore[no-untyped-def]
        y_tilde = other_labels(self.yf, self.num_classes, self._gen)
        batches = Batches(torch.cat([self.xf, self.xr]), torch.cat([y_tilde, self.yr]), batch_size=self.batch_size,
                          seed=self.seed + self.epoch)
        self.epoch += 1
        yield from batches


@register_method
class RandomLabel(UnlearningMethod[RandomLabelParams]):
    """Fine-tune on the forget set relabelled to random other classes, jointly with the retain set."""

    name = "random_label"
    paper = "Golatkar et al., CVPR 2020; 'RL' of Fan et al., SalUn, ICLR 2024, arXiv 2310.12508"
    reference = "OPTML-Group/Unlearn-Saliency Classification/unlearn/RL.py"
    access = DataAccess.FORGET | DataAccess.RETAIN
    Params = RandomLabelParams

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        union = RelabelledUnion(*data.forget_tensors(), *data.retain_tensors(), data.num_classes, p.batch_size,
                                ctx.seed)
        log = train_loop(model, union, cross_entropy_loss, optimizer_for(model, p), epochs=p.epochs,
                         clip_grad_norm=p.clip_grad_norm, progress=self.name if ctx.progress else None)
        ctx.notes.update(steps=log.steps)
        return model
