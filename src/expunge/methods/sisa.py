"""SISA: Sharded, Isolated, Sliced, Aggregated training — exact unlearning by retraining only affected shards.

Paper: Bourtoule, Chandrasekaran, Choquette-Choo, Jia, Travers, Zhang, Lie, Papernot, "Machine Unlearning",
IEEE S&P 2021, arXiv 1912.03817. Reference (read, not copied): cleverhans-lab/machine-unlearning ``sisa.py``
(incremental slice training, checkpoints), ``sharded.py`` (shard bookkeeping), ``aggregation.py`` (vote),
``distribution.py`` (uniform split).

**Training (request-independent, cached).** The training positions are split by a seeded permutation into S shards
of near-equal size and each shard into R slices. Constituent k (a fresh ``ctx.model_spec`` model with its own seed)
is trained incrementally: stage r trains on slices 1..r with the original's ``ctx.recipe`` through the one trainer
(:func:`expunge.train.loop.fit`; per-stage epochs below), checkpointing after each stage. The assignment and every
stage checkpoint are built once per (original, SISA settings, seed) by
:meth:`~expunge.data.access.UnlearningData.train_statistic` and cached in the store, so their cost is reported as
``precompute_s``, not as per-request time.

**SISA replaces the original.** The model handed to :meth:`SISA.unlearn` is a monolithic network, not an ensemble;
SISA's "original" is its own ensemble trained on D (training time in ``ctx.notes["sisa_ensemble_train_s"]``) and
the method returns a :class:`~expunge.methods._shared.sisa_ensemble.SISAEnsemble` (an ``nn.Module`` whose forward
aggregates the constituents). Given a ``SISAEnsemble`` (a previous request's result), it continues from that
ensemble's state: sequential requests compose exactly.

**Unlearning.** For each shard holding a newly forgotten position, restart from the checkpoint after the stage
before its earliest affected slice (its fresh init if that is slice 1) and retrain the remaining stages on the
shard's retained examples; other constituents are untouched. Exactness: constituent k afterwards is bitwise the one
SISA trains from scratch on shard k minus the removed positions with the same seeds and order (tested).
Superseded checkpoints (stages ≥ the restart point of each retrained shard) are *replaced* in the returned ensemble,
so it holds no state computed from D_f. The store's cached statistic still holds the pre-request ensemble, exactly
as the store keeps the original model.

**Choices and deviations.** (1) Uniform split by a seeded permutation (the reference splits positions in file order,
assuming a pre-shuffled file); sizes differ by at most one (the reference gives the remainder to the last shard).
(2) A fresh optimiser and LR schedule per stage (``fit``): the reference keeps Adam/SGD state across slices in memory
but not when it resumes from a checkpoint, so its resumed training differs from its uninterrupted training; here a
checkpoint of the weights fully determines the continuation. (3) Data order reshuffled each epoch with a seed per
(shard, stage), as the project's trainer does; the reference iterates in file order and drops deleted points from
fixed batches. (4) Per-stage epochs: ``epochs`` (default: the recipe's E) is spread over the stages with the
reference's schedule (integer arithmetic), or ``epochs_per_stage`` for every stage. (5) Positions come from
:meth:`~expunge.data.access.UnlearningData.forget_positions`; the retained examples from ``retain_tensors``, which
must hold every training example not yet removed from the ensemble (checked; in a sequential stream the retain set
also lacks earlier requests' examples, as the sequential scenario builds it). Only the affected shards' examples are
used (``ctx.notes["retain_used"]``), although the access log counts the whole retain set as served.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from expunge._hparams import Hyperparams, hp
from expunge._io import stable_hash
from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batches
from expunge.errors import ExpungeError
from expunge.methods._shared.sisa_ensemble import SISAEnsemble, locate, sisa_plan, stage_epochs, train_stages
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.models import ModelSpec
from expunge.train.loop import TrainRecipe


@dataclass(frozen=True, kw_only=True)
class SISAParams(Hyperparams):
    shards: int = hp(4, "S, disjoint shards, one constituent each (paper sweeps up to 20)", low=1, search=(2, 20))
    slices: int = hp(2, "R, slices per shard; a checkpoint after each incremental stage", low=1, search=(1, 8))
    epochs: int = hp(0, "epoch budget E per constituent, spread over the stages as in the reference "
                        "(stage r: floor(2Er/(R+1)) - floor(2E(r-1)/(R+1))); 0 = the original recipe's epochs", low=0)
    epochs_per_stage: int = hp(0, "if > 0: every stage trains this many epochs (overrides epochs)", low=0)
    aggregation: Literal["vote", "softmax"] = hp("vote", "majority vote of labels (paper) or mean of softmax",
                                                 choices=("vote", "softmax"))
    vote_smoothing: float = hp(0.5, "s in the vote's logits log((votes+s)/(A+C*s)); argmax unaffected", low=0.0,
                               low_open=True)


def sisa_schedule(p: SISAParams, recipe: TrainRecipe) -> list[int]:
    if p.epochs_per_stage > 0:
        return [p.epochs_per_stage] * p.slices
    return stage_epochs(p.epochs or recipe.epochs, p.slices)


def train_sisa_state(x: torch.Tensor, y: torch.Tensor, *, spec: ModelSpec, recipe: TrainRecipe, shards: int,
                     slices: int, epochs: list[int], seed: int, removed: np.ndarray | None = None) \
        -> dict[str, torch.Tensor]:
    """Train every constituent from scratch on its shard minus ``removed`` (all of ``x``, ``y`` are the training
    set in position order); return the SISA state as tensors: ``order``, ``bounds``, ``epochs``, ``seed``,
    ``ckpt.{k}.{r}.{name}`` for every shard k and stage r = 1..R, ``train_s`` and ``example_passes``."""
    n = len(x)
    removed = np.zeros(n, dtype=bool) if removed is None else removed
    order, bounds = sisa_plan(n, shards, slices, seed)
    t0, passes = time.perf_counter(), 0
    out = {"order": torch.from_numpy(order), "bounds": torch.from_numpy(bounds),
           "epochs": torch.tensor(epochs, dtype=torch.int64), "seed": torch.tensor(seed, dtype=torch.int64)}
    for k in range(shards):
        _, states, n_passes = train_stages(spec, recipe, lambda pos: (x[torch.from_numpy(pos)],
                                                                      y[torch.from_numpy(pos)]),
                                           order, bounds, removed, shard=k, seed=seed, epochs=epochs)
        passes += n_passes
        for r, state in enumerate(states, start=1):
            out.update({f"ckpt.{k}.{r}.{name}": t for name, t in state.items()})
    out["train_s"] = torch.tensor(time.perf_counter() - t0, dtype=torch.float64)
    out["example_passes"] = torch.tensor(passes, dtype=torch.int64)
    return out


def ensemble_from_state(state: dict[str, torch.Tensor], spec: ModelSpec, *, aggregation: str = "vote",
                        smoothing: float = 0.5) -> SISAEnsemble:
    """Rebuild the ensemble (constituents = stage-R checkpoints; stages 1..R-1 kept as buffers)."""
    order, bounds = state["order"].numpy(), state["bounds"].numpy()
    epochs, seed = [int(e) for e in state["epochs"]], int(state["seed"])
    n_shards, n_slices = bounds.shape[0], bounds.shape[1] - 1
    constituents = [spec.build(seed=0) for _ in range(n_shards)]  # weights are loaded just below
    ens = SISAEnsemble(constituents, spec.num_classes, order=order, bounds=bounds, epochs=epochs, seed=seed,
                       aggregation=aggregation, smoothing=smoothing)
    for k in range(n_shards):
        for r in range(1, n_slices + 1):
            prefix = f"ckpt.{k}.{r}."
            ens.set_checkpoint(k, r, {name[len(prefix):]: t for name, t in state.items() if name.startswith(prefix)})
    return ens


@register_method
class SISA(UnlearningMethod[SISAParams]):
    """SISA ensemble of shard-wise constituents; retrains only affected shards from their last clean checkpoint."""

    name = "sisa"
    paper = "Bourtoule et al., Machine Unlearning, IEEE S&P 2021, arXiv 1912.03817"
    reference = "cleverhans-lab/machine-unlearning sisa.py, sharded.py, aggregation.py"
    access = DataAccess.FORGET | DataAccess.RETAIN | DataAccess.TRAIN_STATS
    Params = SISAParams
    exact = True

    def restore(self, spec: ModelSpec, tensors: Mapping[str, torch.Tensor]) -> nn.Module:
        """The saved ensemble: constituents, plan buffers and stage checkpoints as they were saved."""
        if "sisa_order" not in tensors:
            raise RuntimeError("the tensors hold no SISA ensemble (no 'sisa_order' buffer)")
        n_shards = int(tensors["sisa_bounds"].shape[0])
        ens = SISAEnsemble([spec.build(seed=0) for _ in range(n_shards)], spec.num_classes,
                           order=tensors["sisa_order"].numpy(), bounds=tensors["sisa_bounds"].numpy(),
                           epochs=[int(e) for e in tensors["sisa_stage_epochs"]], seed=int(tensors["sisa_seed"]),
                           aggregation=self.params.aggregation, smoothing=self.params.vote_smoothing)
        for key, value in tensors.items():
            if key.startswith("checkpoints."):
                ens.checkpoints.register_buffer(key.removeprefix("checkpoints."), value.clone())
        ens.load_state_dict(dict(tensors), strict=True)
        return ens

    def _stat_name(self, ctx: RunContext, epochs: list[int]) -> str:
        assert ctx.model_spec is not None and ctx.recipe is not None
        p = self.params
        key = stable_hash({"v": 1, "shards": p.shards, "slices": p.slices, "epochs": epochs, "seed": ctx.seed,
                           "spec": ctx.model_spec.to_dict(), "recipe": ctx.recipe.to_dict()})[:12]
        return f"sisa_S{p.shards}_R{p.slices}_{key}"

    def _initial_ensemble(self, data: UnlearningData, ctx: RunContext) -> SISAEnsemble:
        assert ctx.model_spec is not None and ctx.recipe is not None
        p, spec, recipe = self.params, ctx.model_spec, ctx.recipe
        epochs = sisa_schedule(p, recipe)

        def compute(batches: Batches) -> dict[str, torch.Tensor]:
            xs, ys = zip(*batches, strict=True)
            return train_sisa_state(torch.cat(xs), torch.cat(ys), spec=spec, recipe=recipe, shards=p.shards,
                                    slices=p.slices, epochs=epochs, seed=ctx.seed)

        state = data.train_statistic(self._stat_name(ctx, epochs), compute, batch_size=recipe.batch_size)
        ctx.notes.update(sisa_ensemble_train_s=float(state["train_s"]),
                         sisa_full_example_passes=int(state["example_passes"]))
        return ensemble_from_state(state, spec, aggregation=p.aggregation, smoothing=p.vote_smoothing)

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        if ctx.model_spec is None or ctx.recipe is None:
            raise ExpungeError("sisa needs the original's model spec and recipe (RunContext.model_spec and .recipe)")
        p = self.params
        if isinstance(model, SISAEnsemble):  # a previous request's result: continue from its state
            ens = model
            if (ens.n_shards, ens.n_slices) != (p.shards, p.slices):
                raise ExpungeError(f"the given SISA ensemble has S={ens.n_shards}, R={ens.n_slices} but the "
                                   f"parameters say S={p.shards}, R={p.slices}; use the ensemble's settings")
            if ens.sisa_order.numel() != data.n_train:
                raise ExpungeError(f"the given SISA ensemble was trained on {ens.sisa_order.numel()} examples, the "
                                   f"dataset has {data.n_train}: positions would not mean the same examples")
            ens.aggregation, ens.smoothing = p.aggregation, p.vote_smoothing
        else:
            ens = self._initial_ensemble(data, ctx)
        order, bounds = ens.plan()
        shard_of, slice_of = locate(order, bounds)
        removed = ens.sisa_removed.numpy().copy()
        forget = data.forget_positions()
        new = forget[~removed[forget]]  # positions removed by an earlier request stay removed (idempotent)
        removed[forget] = True
        affected = sorted({int(k) for k in shard_of[new]})
        notes = {"shards_affected": len(affected), "stages_retrained": 0, "example_passes": 0,
                 "checkpoints_deleted": 0, "retain_used": 0, "continued": isinstance(model, SISAEnsemble)}
        if affected:
            retain_pos = data.retain_positions()
            # Exactness is defined per shard: every example still in the ensemble must be served. In a sequential
            # stream the retain set also lacks earlier requests' examples (already in `removed`): that is fine.
            missing = np.setdiff1d(np.flatnonzero(~removed), retain_pos)
            if missing.size:
                raise ExpungeError(f"sisa needs the retain set to hold every training example not forgotten; "
                                   f"{missing.size} are missing (first positions {missing[:5].tolist()}): pass "
                                   "the complement of everything forgotten so far as the retain set")
            x_r, y_r = data.retain_tensors()

            def fetch(pos: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
                at = np.searchsorted(retain_pos, pos)
                assert np.array_equal(retain_pos[at], pos), "retain positions must be sorted and hold pos"
                return x_r[torch.from_numpy(at)], y_r[torch.from_numpy(at)]

            seed, epochs = int(ens.sisa_seed), [int(e) for e in ens.sisa_stage_epochs]
            for k in affected:
                first = int(slice_of[new][shard_of[new] == k].min())  # 0-based earliest affected slice
                _, states, passes = train_stages(ctx.model_spec, ctx.recipe, fetch, order, bounds, removed,
                                                 shard=k, seed=seed, epochs=epochs, start=first,
                                                 start_state=ens.checkpoint(k, first))
                for r, state in enumerate(states, start=first + 1):
                    ens.set_checkpoint(k, r, state)  # overwrites the superseded stage (held D_f information)
                members = order[bounds[k, 0]:bounds[k, -1]]
                notes["stages_retrained"] += len(states)
                notes["checkpoints_deleted"] += len(states)
                notes["example_passes"] += passes
                notes["retain_used"] += int((~removed[members]).sum())
        ens.sisa_removed.copy_(torch.from_numpy(removed))
        alive = [bool((~removed[order[bounds[k, 0]:bounds[k, -1]]]).any()) for k in range(ens.n_shards)]
        ens.sisa_active.copy_(torch.tensor(alive))
        full = ctx.notes.get("sisa_full_example_passes")
        notes["cost_ratio_to_full_sisa"] = notes["example_passes"] / full if full else None
        ctx.notes.update(notes, shards=ens.n_shards, slices=ens.n_slices, active_constituents=sum(alive))
        return ens
