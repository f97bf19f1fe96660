"""Train K small models at once with ``torch.func`` — the shadow-model trainer.

The K models' parameters are stacked (``torch.func.stack_module_state``), packed into one (K, P) leaf tensor, and
one forward pass runs all K models on (K, ...) views of it: the fx-compiled grouped-convolution / batched-matmul
pass of :mod:`expunge.shadows.stacked_forward` where the architecture allows (log ``trainer: batched-stacked``),
else ``vmap(functional_call(...))`` (``batched-vmap``). **Each model sees
its own data**: at every step model k's mini-batch is a gather of its own rows, drawn in exactly the order
:func:`expunge.train.loop.fit` would draw them for that model alone (the same :class:`~expunge.data.batches.Batches`
permutation for its ``order_seed`` and epoch). Models whose data have different sizes have different numbers of
steps per epoch and a shorter last batch: batches are padded to ``batch_size`` with a 0/1 mask (padding rows do not
enter the loss), and a model without a batch at a step does not step at all (its parameters, optimiser state,
step count and LR schedule stay where they are). The per-model loss is the masked mean cross-entropy, and the
gradient of the sum of the K losses with respect to the stacked parameters is, slice by slice, each model's own
gradient. So a batched model equals the model ``fit`` trains one by one with the same seeds, up to floating-point
summation order (tested: gradients to ~1e-7; parameters ≤ 1e-5 after several SGD steps, ≤ 1e-4 with Adam, whose
division by √v turns rounding in near-zero gradient entries into a visible share of their ±lr step).

The optimiser step is written with plain tensor ops on the stacked tensors (:class:`StackedOptimizer`): Adam,
AdamW and SGD (momentum, no dampening, L2 weight decay) as ``torch.optim`` defines them, element-wise and per
model, with a per-model step count (Adam's bias correction) and a per-model LR schedule (constant or cosine).

Speed (benchmarks/results/evaluation_tiers.md): batching removes per-step overhead, not arithmetic, so it pays
for small, overhead-bound models (the MLP; a little for the CNN on 8×8 digits) and not for convolutions on 28×28
inputs, where a grouped convolution over K models is slower on CPU than K separate ones;
:func:`train_models`' "auto" policy (:func:`prefer_batched`) therefore trains those one by one. Two details keep
the step lean: gradients are taken at the per-parameter views and concatenated once (asking autograd for the
gradient of the packed (K, P) leaf runs one zero-filled (K, P) SliceBackward per parameter tensor), and Adam's
update uses scalars and a kept buffer when every model is at the same step (the usual case).

Not batched (:func:`batching_blocker` says why; callers fall back to one-by-one :func:`train_one`):

* models with buffers — the ResNet's BatchNorm: its batch statistics would include the padding rows of ragged
  batches, and its running statistics are updated in place per model; rather than approximate ``fit``, such models
  are trained one by one (exact);
* stochastic layers (dropout with p > 0): ``vmap`` would draw different random numbers than ``fit``;
* the ``onecycle`` schedule (its multi-phase momentum/LR coupling is not re-implemented).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from expunge.data.batches import Batches
from expunge.models import ModelSpec
from expunge.shadows.stacked_forward import compile_stacked_forward
from expunge.train.loop import TrainRecipe, fit
from expunge.train.monitor import Monitor

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam defaults, as make_optimizer uses them
MAX_NONFINITE = 10  # train_loop's default guard


@dataclass(frozen=True)
class ModelJob:
    """One model to train: the rows of the shared ``(x, y)`` tensors it trains on, its init and data-order seeds."""

    positions: np.ndarray
    init_seed: int
    order_seed: int


@dataclass
class Trained:
    model: nn.Module
    log: dict[str, Any]


def batching_blocker(model: nn.Module, recipe: TrainRecipe) -> str | None:
    """Why ``model`` with ``recipe`` cannot be trained by :func:`train_batched` (None when it can)."""
    if any(True for _ in model.buffers()):
        return "the model has buffers (BatchNorm running statistics)"
    if any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules()):
        return "the model has dropout"
    if recipe.schedule not in ("constant", "cosine"):
        return f"the {recipe.schedule!r} schedule is not implemented for stacked parameters"
    if recipe.optimizer not in ("adam", "adamw", "sgd"):
        return f"optimizer {recipe.optimizer!r} is not implemented for stacked parameters"
    return None


def job_batches(x: torch.Tensor, y: torch.Tensor, job: ModelJob, batch_size: int) -> Batches:
    """The loader :func:`train_one` uses for ``job`` (the oracle's: shuffled, seeded by ``order_seed``)."""
    pos = torch.as_tensor(np.asarray(job.positions, dtype=np.int64))
    return Batches(x[pos], y[pos], batch_size=batch_size, shuffle=True, seed=job.order_seed)


def train_one(spec: ModelSpec, recipe: TrainRecipe, x: torch.Tensor, y: torch.Tensor, job: ModelJob,
              *, progress: str | None = None) -> Trained:
    """The reference path: build from ``init_seed`` and :func:`~expunge.train.loop.fit` on the job's rows."""
    model = spec.build(seed=job.init_seed)
    log = fit(model, job_batches(x, y, job, recipe.batch_size), recipe, seed=job.order_seed, progress=progress)
    return Trained(model.eval(), {**log.to_dict(), "trainer": "one-by-one"})


class StackedOptimizer:
    """Adam / AdamW / SGD on stacked (K, ...) parameters with per-model masks, step counts and LR schedules.

    Same update rules as ``torch.optim`` (single-tensor implementations): Adam ``g += wd·p; m.lerp_(g, 1 − β1);
    v = β2·v + (1 − β2)·g²; p −= lr/(1 − β1^t) · m / (√v/√(1 − β2^t) + ε)``; AdamW decays ``p *= 1 − lr·wd`` first
    instead of the L2 term; SGD ``g += wd·p; buf = g`` (first step) or ``momentum·buf + g``; ``p −= lr·buf``.
    Cosine schedule: ``lr_t = lr·(1 + cos(π t / T_k))/2`` with ``T_k`` model k's total steps
    (``CosineAnnealingLR(T_max=epochs·len(batches))`` in closed form).
    """

    def __init__(self, params: Sequence[torch.Tensor], recipe: TrainRecipe, total_steps: Sequence[int]) -> None:
        self.params = list(params)
        self.recipe = recipe
        k = len(total_steps)
        self.total = torch.tensor([max(1, t) for t in total_steps], dtype=torch.float64)
        self.sched_t = torch.zeros(k, dtype=torch.float64)  # scheduler steps so far (every step with a batch)
        self.opt_t = torch.zeros(k, dtype=torch.float64)    # optimiser steps so far (Adam's bias correction)
        self.state: list[dict[str, torch.Tensor]] = []
        self._scratch: dict[int, torch.Tensor] = {}
        for p in self.params:
            if recipe.optimizer == "sgd":
                self.state.append({"buf": torch.zeros_like(p)})
            else:
                self.state.append({"m": torch.zeros_like(p), "v": torch.zeros_like(p)})

    def _buffer(self, p: torch.Tensor) -> torch.Tensor:
        buf = self._scratch.get(id(p))
        if buf is None:
            buf = self._scratch[id(p)] = torch.empty_like(p)
        return buf

    def current_lr(self) -> torch.Tensor:
        """(K,) float64 learning rates for the next step."""
        base = torch.full_like(self.sched_t, self.recipe.lr)
        if self.recipe.schedule == "cosine":
            return base * (1 + torch.cos(math.pi * self.sched_t / self.total)) / 2
        return base

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor], update: torch.Tensor, scheduled: torch.Tensor) -> None:
        """Update the models where ``update`` (K,) is True; advance the schedule where ``scheduled`` is True.

        In-place ops as in ``torch.optim``; when some model must not step (a ragged epoch end), its rows of the
        parameters and state are restored afterwards (rare, so the copies cost nothing overall)."""
        lr = self.current_lr()
        self.opt_t += update.double()
        every = bool(update.all())
        r = self.recipe
        b1, b2 = ADAM_BETAS
        t = self.opt_t.clamp_min(1)
        for p, g, st in zip(self.params, grads, self.state, strict=True):
            view = (-1,) + (1,) * (p.dim() - 1)
            mask = update.view(view)
            saved = None if every else [p.clone(), *(v.clone() for v in st.values())]
            if not every:
                g = torch.where(mask, g, torch.zeros_like(g))  # also clears NaN of models that do not step
            lr_p = lr.to(p.dtype).view(view)
            if r.optimizer == "sgd":
                if r.weight_decay:
                    g = g.add(p, alpha=r.weight_decay)
                if r.momentum:  # a zero buffer makes the first step buf = g exactly, as torch.optim's clone
                    g = st["buf"].mul_(r.momentum).add_(g)
                p.sub_(lr_p * g)
            else:
                if r.optimizer == "adamw" and r.weight_decay:
                    p.mul_(1 - lr_p * r.weight_decay)
                elif r.weight_decay:
                    g = g.add(p, alpha=r.weight_decay)
                st["m"].lerp_(g, 1 - b1)
                st["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
                step_size = lr / (1 - b1 ** t)
                bc2_sqrt = torch.sqrt(1 - b2 ** t)
                if every and bool((step_size == step_size[0]).all()) and bool((bc2_sqrt == bc2_sqrt[0]).all()):
                    # the usual case (same step count and LR everywhere): scalars, in place, as torch.optim does
                    # into a kept buffer: a fresh (K, P) tensor each step costs page faults (glibc mmaps it)
                    denom = torch.sqrt(st["v"], out=self._buffer(p)).div_(float(bc2_sqrt[0])).add_(ADAM_EPS)
                    p.addcdiv_(st["m"], denom, value=-float(step_size[0]))
                else:
                    denom = (st["v"].sqrt() / bc2_sqrt.to(p.dtype).view(view)).add_(ADAM_EPS)
                    p.sub_(step_size.to(p.dtype).view(view) * st["m"] / denom)
            if saved is not None:
                for cur, old in zip([p, *st.values()], saved, strict=True):
                    cur.copy_(torch.where(mask, cur, old))
        self.sched_t += scheduled.double()


def _unstack(spec: ModelSpec, flat: torch.Tensor, layout: list[tuple[str, int, int, torch.Size]], k: int,
             init_seed: int) -> nn.Module:
    model = spec.build(seed=init_seed)
    model.load_state_dict({n: flat[k, a:b].detach().reshape(shape).clone() for n, a, b, shape in layout}, strict=True)
    return model.eval()


def _epoch_rows(loaders: list[Batches], rows: list[torch.Tensor], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch's data for every model: (K, width) pool rows in the model's own order (its Batches permutation
    for this epoch), padded, and the (K, width) 0/1 mask of real entries. Step s is columns [s·B, (s+1)·B)."""
    idx = torch.zeros(len(loaders), width, dtype=torch.long)
    mask = torch.zeros(len(loaders), width)
    for k, (loader, r) in enumerate(zip(loaders, rows, strict=True)):
        order = torch.cat([b for (b,) in loader])  # consecutive batches = one permutation; advances the epoch
        idx[k, :order.numel()] = r[order]
        mask[k, :order.numel()] = 1.0
    return idx, mask


def train_batched(spec: ModelSpec, recipe: TrainRecipe, x: torch.Tensor, y: torch.Tensor, jobs: Sequence[ModelJob],
                  *, on_step: Callable[[int], None] | None = None) -> list[Trained]:
    """Train one model per job at once (see the module docstring); the result matches :func:`train_one` per job.

    All parameters of the K models live in one (K, P) leaf tensor; the forward pass sees them as (K, ...) views, so
    the optimiser step is a handful of element-wise ops whatever the number of layers.

    Raises:
        ValueError: the architecture or recipe cannot be batched (:func:`batching_blocker`), or no job.
    """
    if not jobs:
        raise ValueError("train_batched needs at least one job")
    t0 = time.perf_counter()
    models = [spec.build(seed=j.init_seed) for j in jobs]
    blocker = batching_blocker(models[0], recipe)
    if blocker is not None:
        raise ValueError(f"cannot train {spec.name!r} batched: {blocker}")
    stacked, _ = stack_module_state(models)
    n_models, bs = len(jobs), recipe.batch_size
    layout, offset = [], 0
    for name, t in stacked.items():
        size = t[0].numel()
        layout.append((name, offset, offset + size, t.shape[1:]))
        offset += size
    flat = torch.cat([stacked[n].detach().reshape(n_models, -1) for n, *_ in layout], 1).requires_grad_(True)
    forward, vmap_reason = compile_stacked_forward(models[0].train(), x[:2])
    engine = "batched-stacked"
    if forward is None:  # fall back to vmap, which runs any functional model (slower on CPU: see stacked_forward)
        base = copy.deepcopy(models[0]).to("meta").train()

        def one(p: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
            return functional_call(base, p, (xb,))

        forward, engine = vmap(one), "batched-vmap"
    rows = [torch.as_tensor(np.asarray(j.positions, dtype=np.int64)) for j in jobs]
    # Index loaders: the same permutation per (order_seed, epoch, n) as the job's own Batches in train_one.
    loaders = [Batches(torch.arange(len(r)), batch_size=bs, shuffle=True, seed=j.order_seed)
               for r, j in zip(rows, jobs, strict=True)]
    per_epoch = torch.tensor([len(ld) for ld in loaders])
    n_steps = int(per_epoch.max())
    opt = StackedOptimizer([flat], recipe, [recipe.epochs * int(s) for s in per_epoch])
    steps = torch.zeros(n_models, dtype=torch.long)
    seen = torch.zeros(n_models, dtype=torch.long)
    skipped = torch.zeros(n_models, dtype=torch.long)
    stopped_at: list[float | None] = [None] * n_models
    epoch_losses: list[list[float]] = [[] for _ in jobs]
    alive = torch.ones(n_models, dtype=torch.bool)
    for epoch in range(recipe.epochs):
        idx_all, mask_all = _epoch_rows(loaders, rows, n_steps * bs)
        running = torch.zeros(n_models, dtype=torch.float64)
        counted = torch.zeros(n_models, dtype=torch.float64)
        for s in range(n_steps):
            idx, mask = idx_all[:, s * bs:(s + 1) * bs], mask_all[:, s * bs:(s + 1) * bs]
            counts = mask.sum(1)
            has_batch = (counts > 0) & alive
            params = {n: flat[:, a:b].view(n_models, *shape) for n, a, b, shape in layout}
            logits = forward(params, x[idx])
            ce = F.cross_entropy(logits.flatten(0, 1), y[idx].flatten(), reduction="none").view(n_models, bs)
            losses = (ce * mask).sum(1) / counts.clamp_min(1)
            update = has_batch & torch.isfinite(losses.detach())
            total = losses.sum() if bool(update.all()) else torch.where(update, losses, 0.0).sum()
            # Gradients at the per-parameter views, concatenated once: asking for d/d(flat) would run one
            # SliceBackward per parameter tensor, each zero-filling a whole (K, P) buffer (a quarter of the step).
            views = list(params.values())
            grad = torch.cat([g.reshape(n_models, -1) for g in torch.autograd.grad(total, views)], 1)
            opt.step([grad], update, has_batch)
            det = losses.detach().double()
            running += torch.where(update, det * counts.double(), 0.0)
            counted += torch.where(update, counts.double(), 0.0)
            steps += has_batch.long()
            seen += torch.where(has_batch, counts, 0.0).long()
            if not bool((update == has_batch).all()):  # train_loop's guard: skip, count, stop after MAX_NONFINITE
                skipped += (has_batch & ~update).long()
                for k in torch.nonzero(alive & (skipped >= MAX_NONFINITE)).flatten().tolist():
                    alive[k] = False
                    stopped_at[k] = epoch + (s + 1) / int(per_epoch[k])
            if on_step is not None:
                on_step(int(has_batch.sum()))
        for k in range(n_models):
            if stopped_at[k] is None or stopped_at[k] > epoch:  # type: ignore[operator]
                loss = float(running[k] / counted[k]) if counted[k] > 0 else -1.0
                epoch_losses[k].append(loss if math.isfinite(loss) else -1.0)
        if not bool(alive.any()):
            break
    wall = time.perf_counter() - t0
    out = []
    for k, job in enumerate(jobs):
        stop = stopped_at[k]
        log = {"epochs": float(recipe.epochs) if stop is None else stop, "steps": int(steps[k]),
               "examples_seen": int(seen[k]), "epoch_losses": epoch_losses[k], "skipped_nonfinite": int(skipped[k]),
               "stopped": None if stop is None else f"{int(skipped[k])} non-finite steps", "trainer": engine,
               **({"stacked_forward_unavailable": vmap_reason} if vmap_reason else {}),
               "batch_models": n_models, "batch_wall_s": wall, "wall_s": wall / n_models}
        out.append(Trained(_unstack(spec, flat, layout, k, job.init_seed), log))
    return out


def prefer_batched(model: nn.Module, x: torch.Tensor) -> bool:
    """The "auto" policy: batch unless the model convolves inputs larger than 16×16.

    Measured side by side on this 2-core CPU (benchmarks/results/evaluation_tiers.md, K = 16 in groups of 8, idle
    machine, ``batched-stacked`` engine): the MLP gains ×1.2 (1 thread) to ×2.2 (2 threads), the CNN on 8×8 digits
    ×1.07 to ×1.28; on 28×28 inputs a grouped convolution over K models is slower than K separate ones (×0.74). A
    convolutional step is compute-bound on CPU, so batching has only per-step overhead to remove."""
    has_conv = any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())
    return not (has_conv and x.dim() >= 4 and x.shape[-1] * x.shape[-2] > 256)


def train_models(spec: ModelSpec, recipe: TrainRecipe, x: torch.Tensor, y: torch.Tensor, jobs: Sequence[ModelJob],
                 *, batched: bool | None = None, progress: str | None = None) -> list[Trained]:
    """Train every job: batched (``batched=True``, or None = :func:`prefer_batched`) when the architecture allows,
    else one by one — the same models up to floating-point summation order. The logs say which trainer ran
    (``trainer``) and, when the batched one did not, why (``batching_blocker``)."""
    if not jobs:
        return []
    probe = spec.build(seed=jobs[0].init_seed)
    blocker = batching_blocker(probe, recipe)
    if blocker is None and batched is False:
        blocker = "not requested"
    elif blocker is None and batched is None and not prefer_batched(probe, x):
        blocker = "auto: one by one is faster for convolutions on inputs larger than 16x16"
    if blocker is None:
        return train_batched(spec, recipe, x, y, jobs)
    with Monitor():  # one free-memory release for all K (each fit's own monitor is then nested: none)
        out = [train_one(spec, recipe, x, y, j, progress=progress) for j in jobs]
    for t in out:
        t.log["batching_blocker"] = blocker
    return out
