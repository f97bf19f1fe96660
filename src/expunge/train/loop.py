"""The one training loop, shared by original training, the retrain oracle and every gradient-based method.

Methods differ in their loss (``loss_fn(model, batch)``), their data and their optimiser; the loop does the rest:
epochs, per-step LR schedule, gradient clipping, a non-finite guard, hooks after each step (e.g. SalUn's mask) and
each epoch (early stopping), progress bars and the wall-time / peak-memory record.

The non-finite guard (what ascent-type and Lipschitz objectives need): a step is skipped and counted when its loss
is not finite, when its gradient norm is not finite, or when the update itself makes the model's parameters
non-finite (a finite but huge step; "non-finite" is judged by each tensor's norm, so weights beyond ~1e19, whose
squares overflow float32, count as diverged too); the parameters are then put back as they were before the step.
After ``max_nonfinite`` such steps training stops with the last finite parameters. Optimiser state (momentum, Adam
moments) is not rolled back: a diverging run keeps tripping the guard and stops. Measured need: JiT on a
Fashion-MNIST CNN diverged through finite losses up to 1e13 to NaN weights when only the loss was checked. The
gradient and update checks cost under 1 ms a step on the 421k CNN (a norm, a copy, a norm; a step is ~25 ms), so
:func:`fit` — plain supervised training of originals, oracles, shadows, SISA constituents — checks the loss only
(``guard_updates=False``; gradients are still checked when clipping computes their norm anyway) and its timings
stay comparable with earlier runs.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from expunge.data.batches import Batch, Batches
from expunge.models.inference import model_mode
from expunge.tasks import get_task
from expunge.train import batchnorm
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


@dataclass
class StepTally:
    """Steps of every :func:`train_loop` run inside :func:`count_steps`: how many were taken, how many the non-finite
    guard skipped, and which loops it stopped. The runner reads it to tell a run whose every step was rolled back
    (or that stopped on the guard) from an unlearning (``RunRecord.status``), whatever the method writes in its
    notes."""

    steps: int = 0
    skipped_nonfinite: int = 0
    guard_stops: int = 0


_TALLY: contextvars.ContextVar[StepTally | None] = contextvars.ContextVar("expunge_step_tally", default=None)


@contextlib.contextmanager
def count_steps() -> Iterator[StepTally]:
    """Count the steps of the training loops run inside (the innermost ``count_steps`` gets them)."""
    tally = StepTally()
    token = _TALLY.set(tally)
    try:
        yield tally
    finally:
        _TALLY.reset(token)


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


def _finite_gradient(params: list[nn.Parameter], clip_grad_norm: float | None, check: bool) -> bool:
    """Clip (when asked) and report whether the total gradient norm is finite (always True when neither clipping
    nor ``check`` asks for the norm: ``fit``'s hot path then does no work here)."""
    if clip_grad_norm is None and not check:
        return True
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return True
    if clip_grad_norm is not None:
        return bool(torch.isfinite(torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)))
    return not check or bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)))


def _finite_step(optimizer: torch.optim.Optimizer, params: list[nn.Parameter], check: bool) -> bool:
    """Take the optimiser step; with ``check``, if it leaves a parameter non-finite, restore the pre-step values and
    return False. One norm per tensor (``_foreach_norm``) is ~10× cheaper than ``isfinite`` on every element."""
    if not check or not params:
        optimizer.step()
        return True
    before = [p.detach().clone() for p in params]
    optimizer.step()
    if bool(torch.isfinite(torch.stack(torch._foreach_norm([p.detach() for p in params]))).all()):
        return True
    with torch.no_grad():
        torch._foreach_copy_(params, before)
    return False


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
    guard_updates: bool = True,
) -> TrainLog:
    """Run ``epochs`` passes of ``batches`` minimising ``loss_fn``; return the log. ``on_epoch_end(epoch)`` returning
    True stops training (early stopping). ``guard_updates`` adds the gradient-norm and post-step checks of the
    non-finite guard (module docstring). On ``batches`` from the forget loader (``role == "forget"``) BatchNorm running
    statistics stay frozen (:mod:`expunge.train.batchnorm`)."""
    if clip_grad_norm is not None and not clip_grad_norm > 0:  # torch would scale by a negative factor: ascent flips
        raise ValueError(f"clip_grad_norm must be > 0 or None, got {clip_grad_norm}")
    log = TrainLog()
    params = [p for p in model.parameters() if p.requires_grad]
    per_epoch = len(batches) if hasattr(batches, "__len__") else None  # type: ignore[arg-type]
    total = per_epoch * epochs if per_epoch is not None else None
    bar = tqdm(total=total, desc=progress or "", disable=True if progress is None else None, leave=False,
               unit="step")
    # BatchNorm running statistics: frozen on forget-only batches, updated on others (expunge.train.batchnorm)
    forget_only = getattr(batches, "role", None) == "forget"
    if train_mode and batchnorm.tracking_layers(model):
        batchnorm.note(batchnorm.FROZEN_FORGET if forget_only else batchnorm.UPDATED_OTHER)
    frozen = batchnorm.frozen_batchnorm(model) if train_mode and forget_only else contextlib.nullcontext()
    with model_mode(model, training=train_mode), frozen, Monitor() as mon:
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
                    if not _finite_gradient(params, clip_grad_norm, guard_updates) \
                            or not _finite_step(optimizer, params, guard_updates):
                        log.skipped_nonfinite += 1
                    else:
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
    if (tally := _TALLY.get()) is not None:
        tally.steps += log.steps
        tally.skipped_nonfinite += log.skipped_nonfinite
        tally.guard_stops += log.skipped_nonfinite >= max_nonfinite  # the guard stopped this loop
    log.wall_s = mon.result.wall_s
    log.peak_rss_bytes, log.peak_delta_bytes = mon.result.peak_rss_bytes, mon.result.peak_delta_bytes
    log.epoch_losses = [x if math.isfinite(x) else -1.0 for x in log.epoch_losses]
    return log


# The classification task's loss on a batch: what classification-only methods minimise or ascend.
cross_entropy_loss: LossFn = get_task("classification").batch_loss


def fit(model: nn.Module, batches: Batches, recipe: TrainRecipe, *, seed: int, loss_fn: LossFn = cross_entropy_loss,
        progress: str | None = None) -> TrainLog:
    """Train ``model`` from its current state on ``batches`` with ``recipe``, minimising ``loss_fn`` (the task's
    :meth:`~expunge.tasks.Task.batch_loss`): the original's, the oracle's, the shadows' and the ``retrain`` method's
    trainer (``batches.batch_size`` should equal ``recipe.batch_size``)."""
    opt = make_optimizer(model.parameters(), recipe.optimizer, lr=recipe.lr, momentum=recipe.momentum,
                         weight_decay=recipe.weight_decay)
    sched = make_scheduler(opt, recipe.schedule, recipe.epochs * len(batches))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dropout and any stochastic layers
        return train_loop(model, batches, loss_fn, opt, epochs=recipe.epochs, scheduler=sched,
                          progress=progress, guard_updates=False)  # supervised training: the loss check suffices
