"""Optimiser hyperparameters shared by the gradient-based methods, and the one way to build their optimiser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from expunge._hparams import Hyperparams, hp
from expunge.train.loop import make_optimizer


@dataclass(frozen=True, kw_only=True)
class GradientParams(Hyperparams):
    """Fields every gradient-based method has. Subclasses redeclare a field to change its (paper) default."""

    epochs: int = hp(10, "passes over the method's main data", low=1, search=(1, 20))
    lr: float = hp(0.01, "learning rate", low=0.0, low_open=True, search=(1e-5, 1e-1), log=True)
    optimizer: Literal["sgd", "adam", "adamw"] = hp("sgd", "optimiser", choices=("sgd", "adam", "adamw"))
    momentum: float = hp(0.9, "SGD momentum", low=0.0, high=1.0)
    weight_decay: float = hp(5e-4, "weight decay", low=0.0)
    batch_size: int = hp(256, "mini-batch size", low=1)
    clip_grad_norm: float | None = hp(None, "clip the gradient norm to this value (None = no clipping)", low=0.0,
                                      low_open=True)  # a negative max_norm flips the gradient's sign


def optimizer_for(model: nn.Module, p: GradientParams) -> torch.optim.Optimizer:
    return make_optimizer(model.parameters(), p.optimizer, lr=p.lr, momentum=p.momentum,
                          weight_decay=p.weight_decay)
