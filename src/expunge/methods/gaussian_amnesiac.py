"""Gaussian fine-tuning ("Gaussian amnesiac"): relabel the forget set with draws from the targets' distribution,
then fine-tune on the whole training set.

Paper: Tarun, Chundawat, Mandal, Kankanhalli, "Deep Regression Unlearning", ICML 2023, arXiv 2210.08196 — the
regression counterpart of Amnesiac unlearning's random relabelling (Graves et al., AAAI 2021): a regression target
has no "other class", so forget targets are drawn from a Gaussian fitted to the training targets instead.
Reference: ayu987/deep-regression-unlearning ``AgeDB_AllCNN_0to30_forgetting.ipynb`` ("Gaussian-Amnesiac" cells):
μ, σ = mean and std of *all* training targets (forget rows included; pandas' std, ddof 1); each forget target
replaced once by a draw of N(μ, σ); one epoch of ``fit_one_cycle`` (Adam, lr 1e-3, L1 loss, batch 256) over the
relabelled training set (retain rows with their true targets).

Choices, made here: multi-output targets get one Gaussian per output (μ, σ per column; the paper's targets are
scalars); the draws are seeded from ``ctx.seed`` and made once (fixed for every epoch, as the notebook's relabelled
DataFrame); ``loss="mse"`` fine-tunes with the squared error, the loss expunge's regression task trains with
(default L1, the paper's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from expunge._hparams import hp
from expunge._seeds import derive_seed
from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batch, Batches
from expunge.methods._shared.optim import GradientParams, optimizer_for
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.tasks.regression import as_targets_shape
from expunge.train.loop import train_loop


@dataclass(frozen=True, kw_only=True)
class GaussianAmnesiacParams(GradientParams):
    epochs: int = hp(1, "passes over the relabelled training set (reference: 1)", low=1, search=(1, 5))
    lr: float = hp(1e-3, "learning rate (reference: 1e-3)", low=0.0, low_open=True, search=(1e-4, 1e-2), log=True)
    optimizer: Literal["sgd", "adam", "adamw"] = hp("adam", "optimiser", choices=("sgd", "adam", "adamw"))
    weight_decay: float = hp(0.0, "weight decay (the reference's Adam has none)", low=0.0)
    batch_size: int = hp(256, "mini-batch size (reference: 256)", low=1)
    loss: Literal["l1", "mse"] = hp("l1", "fine-tuning loss (paper: L1)", choices=("l1", "mse"))


def gaussian_targets(y_all: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` draws of N(μ, σ) with μ, σ the mean and std (ddof 1) of ``y_all`` per output column, shaped like
    ``y_all``'s rows."""
    y = y_all.double().reshape(len(y_all), -1)
    mu, sd = y.mean(0), y.std(0, unbiased=True) if len(y) > 1 else torch.zeros(y.shape[1], dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    draws = mu + sd * torch.randn((n, y.shape[1]), generator=g, dtype=torch.float64)
    return draws.reshape((n, *y_all.shape[1:])).to(y_all.dtype)


@register_method
class GaussianAmnesiac(UnlearningMethod[GaussianAmnesiacParams]):
    """Replace forget targets by draws of N(mean, std of all targets); fine-tune on D_r ∪ relabelled D_f (L1)."""

    name = "gaussian_amnesiac"
    paper = "Tarun et al., Deep Regression Unlearning, ICML 2023, arXiv 2210.08196 (Gaussian fine-tuning)"
    reference = "ayu987/deep-regression-unlearning AgeDB_AllCNN_0to30_forgetting.ipynb (Gaussian-Amnesiac cells)"
    access = DataAccess.FORGET | DataAccess.RETAIN
    Params = GaussianAmnesiacParams
    tasks = frozenset({"regression"})

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        xr, yr = data.retain_tensors()
        xf, yf = data.forget_tensors()
        noisy = gaussian_targets(torch.cat([yr, yf]), len(yf), derive_seed(ctx.seed, "gaussian-amnesiac"))
        relabelled = Batches(torch.cat([xr, xf]), torch.cat([yr, noisy]), batch_size=p.batch_size, shuffle=True,
                             seed=derive_seed(ctx.seed, "gaussian-amnesiac-order"))
        fn = F.l1_loss if p.loss == "l1" else F.mse_loss

        def loss(m: nn.Module, batch: Batch) -> torch.Tensor:
            return fn(as_targets_shape(m(batch[0]), batch[1]), batch[1])

        log = train_loop(model, relabelled, loss, optimizer_for(model, p), epochs=p.epochs,
                         clip_grad_norm=p.clip_grad_norm, progress="gaussian_amnesiac" if ctx.progress else None)
        ctx.notes.update(steps=log.steps, n_forget=len(xf), n_retain=len(xr),
                         relabel_mean=float(noisy.double().mean()), skipped_nonfinite=log.skipped_nonfinite)
        return model
