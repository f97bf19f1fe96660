"""Fine-tuning a model to reproduce target outputs on the forget set and a retain sample: the matching step shared by
datamodel matching (:mod:`expunge.methods.dmm`, predicted targets) and oracle matching
(:mod:`expunge.methods.oracle_matching`, the oracle's own outputs), so that the two differ only in their targets.

Georgiev et al., "Attribute-to-Delete: Machine Unlearning via Datamodel Matching", ICLR 2025, arXiv 2410.23232:
minimise the squared error between the model's outputs and the targets over the forget examples and a sample of
retained ones. Choices made here (the paper leaves them open at this scale): logits matched by mean squared error;
every forget example plus a seeded sample of ``retain_multiple`` × |F| retained ones (all if fewer); Adam, lr 1e-3,
batch 64 (the training recipe's optimiser).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from expunge._hparams import hp
from expunge.data.batches import Batches
from expunge.methods._shared.optim import GradientParams, optimizer_for
from expunge.train.loop import TrainLog, train_loop


@dataclass(frozen=True, kw_only=True)
class OutputMatchingParams(GradientParams):
    epochs: int = hp(2, "passes over the matching set (forget + retain sample)", low=1, search=(1, 10))
    retain_multiple: float = hp(2.0, "retained examples matched, as a multiple of the forget set's size", low=0.0,
                                search=(0.5, 8.0))
    optimizer: Literal["sgd", "adam", "adamw"] = hp("adam", "optimiser", choices=("sgd", "adam", "adamw"))
    lr: float = hp(1e-3, "learning rate", low=0.0, low_open=True, search=(1e-4, 1e-2), log=True)
    weight_decay: float = hp(0.0, "weight decay", low=0.0)
    batch_size: int = hp(64, "mini-batch size", low=1)


def retain_sample(n_retain: int, n_forget: int, multiple: float, seed: int) -> np.ndarray:
    """Sorted indices (into the retain set) of ``multiple`` × ``n_forget`` retained examples drawn without
    replacement with ``seed``; every index if the retain set is smaller."""
    k = min(n_retain, round(multiple * n_forget))
    return np.sort(np.random.default_rng(seed).choice(n_retain, size=k, replace=False))


def match_outputs(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, p: OutputMatchingParams, *, seed: int,
                  progress: str | None) -> TrainLog:
    """``p.epochs`` passes of mean-squared-error fine-tuning of ``model(x)`` toward ``targets`` (batch order from
    ``seed``)."""
    batches = Batches(x, targets, batch_size=p.batch_size, seed=seed)
    return train_loop(model, batches, lambda m, b: F.mse_loss(m(b[0]), b[1]), optimizer_for(model, p),
                      epochs=p.epochs, clip_grad_norm=p.clip_grad_norm, progress=progress)
