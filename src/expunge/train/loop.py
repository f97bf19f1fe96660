"""The one training loop, shared by original training, the retrain oracle and every gradient-based method.

Methods differ in their loss (``loss_fn(model, batch)``), their data and their optimiser; the loop does the rest:
epochs, per-step LR schedule, gradient clipping, a non-finite guard (a step whose loss or gradient is not finite is
skipped and counted; after ``max_nonfinite`` such steps training stops, keeping the last finite parameters — the guard
ascent-type objectives need), hooks after each step (e.g. SalUn's mask) and each epoch (early stopping), progress bars
and the wall-time / peak-memory record.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from expunge.train.batches import Batch, Batches
from expunge.train.monitor import Monitor

LossFn = Callable[[nn.Module, Batch], torch.Tensor]
OptimizerName = Literal["adam", "sgd", "adamw"]
ScheduleName = Literal["constant", "cosine", "onecycle"]


@dataclass(frozen=True)
class TrainRecipe:
    """How a model is trained from scratch; the retrain oracle reuses the original's recipe exactly."""

    epochs: int = 30
    batch_size: int = 64
    optimizer: OptimizerName = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: ScheduleName = "constant"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class TrainLog:
    epochs: float = 0.0
    steps: int = 0
    examples_seen: int = 0
    wall_s: float = 0.0
    peak_rss_bytes: int = 0
    peak_delta_bytes: int = 0
    epoch_losses: list[float] = field(default_factory=list)
    skipped_nonfinite: int = 0
    stopped: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def make_optimizer(params: Iterable[torch.nn.Parameter], name: OptimizerName, *, lr: float, momentum: float = 0.9,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, name: ScheduleName, total_steps: int) \
        -> torch.optim.lr_scheduler.LRScheduler | None:
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    if name == "onecycle":
        lrs = [g["lr"] for g in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lrs, total_steps=max(1, total_steps))
    return None


def train_loop(
    model: nn.Module,
    batches: Iterable[Batch],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int = 1,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    clip_grad_norm: float | None = None,
    max_steps: int | None = None,
    max_nonfinite: int = 10,
    after_step: Callable[[], None] | None = None,
    on_epoch_end: Callable[[int], bool | None] | None = None,
    progress: str | None = None,
    train_mode: bool = True,
) -> TrainLog:
    """Run ``epochs`` passes of ``batches`` minimising ``loss_fn``; return the log. ``on_epoch_end(epoch)`` returning
    True stops training (early stopping)."""
    log = TrainLog()
    per_epoch = len(batches) if hasattr(batches, "__len__") else None  # type: ignore[arg-type]
    total = per_epoch * epochs if per_epoch is not None else None
    was_training = model.training
    model.train(train_mode)
    bar = tqdm(total=total, desc=progress or "", disable=True if progress is None else None, leave=False,
               unit="step")
    with Monitor() as mon:
        for epoch in range(epochs):
            running, count, done = 0.0, 0, 0
            for batch in batches:
                done += 1
                loss = loss_fn(model, batch)
                optimizer.zero_grad(set_to_none=True)
                if not torch.isfinite(loss):
                    log.skipped_nonfinite += 1
                else:
                    loss.backward()
                    grad_norm = (torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
                                 if clip_grad_norm is not None else None)
                    if grad_norm is not None and not torch.isfinite(grad_norm):
                        log.skipped_nonfinite += 1
                    else:
                        optimizer.step()
                        if after_step is not None:
                            after_step()
                        running += float(loss.detach()) * len(batch[0])
                        count += len(batch[0])
                if scheduler is not None:
                    scheduler.step()
                log.steps += 1
                log.examples_seen += len(batch[0])
                bar.update(1)
                if log.skipped_nonfinite >= max_nonfinite:
                    log.stopped = f"{log.skipped_nonfinite} non-finite steps"
                    break
                if max_steps is not None and log.steps >= max_steps:
                    log.stopped = f"max_steps={max_steps}"
                    break
            log.epoch_losses.append(running / count if count else math.nan)
            log.epochs = epoch + (1.0 if log.stopped is None or not per_epoch else done / per_epoch)
            bar.set_postfix(loss=f"{log.epoch_losses[-1]:.4f}")
            if log.stopped is not None:
                break
            if on_epoch_end is not None and on_epoch_end(epoch):
                log.stopped = f"early stop after epoch {epoch + 1}"
                break
    bar.close()
    model.train(was_training)
    log.wall_s = mon.result.wall_s
    log.peak_rss_bytes, log.peak_delta_bytes = mon.result.peak_rss_bytes, mon.result.peak_delta_bytes
    log.epoch_losses = [x if math.isfinite(x) else -1.0 for x in log.epoch_losses]
    return log


def cross_entropy_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    return F.cross_entropy(model(batch[0]), batch[1])


def fit(model: nn.Module, batches: Batches, recipe: TrainRecipe, *, seed: int, progress: str | None = None) \
        -> TrainLog:
    """Train ``model`` from its current state on ``batches`` with ``recipe``: the original's, the oracle's and the
    ``retrain`` method's trainer (``batches.batch_size`` should equal ``recipe.batch_size``)."""
    opt = make_optimizer(model.parameters(), recipe.optimizer, lr=recipe.lr, momentum=recipe.momentum,
                         weight_decay=recipe.weight_decay)
    sched = make_scheduler(opt, recipe.schedule, recipe.epochs * len(batches))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dropout and any stochastic layers
        return train_loop(model, batches, cross_entropy_loss, opt, epochs=recipe.epochs, scheduler=sched,
                          progress=progress)
