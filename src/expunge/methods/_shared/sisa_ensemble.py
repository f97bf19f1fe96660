"""SISA building blocks used by :mod:`expunge.methods.sisa`: the seeded shard/slice plan, the per-stage epoch
schedule, stage-wise training of one constituent with the one trainer, and the aggregating ensemble module that
carries SISA's training-time state (assignment, removed positions, per-stage checkpoints) as buffers.

Paper: Bourtoule et al., "Machine Unlearning", IEEE S&P 2021, arXiv 1912.03817. Reference (read, not copied):
cleverhans-lab/machine-unlearning ``distribution.py`` (uniform split), ``sisa.py`` (slice schedule),
``aggregation.py`` (vote).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from expunge._seeds import derive_seed
from expunge.data.batches import Batches
from expunge.models import ModelSpec
from expunge.store.artifacts import state_tensors
from expunge.train.loop import TrainRecipe, fit

Fetch = Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]]  # training positions -> (x, y)
AGGREGATIONS = ("vote", "softmax")


def _split_edges(start: int, size: int, parts: int) -> np.ndarray:
    """Edges of ``parts`` contiguous chunks of [start, start+size) whose sizes differ by at most one (the first
    ``size % parts`` chunks are one longer, as ``np.array_split``)."""
    sizes = np.full(parts, size // parts, dtype=np.int64)
    sizes[: size % parts] += 1
    return start + np.concatenate([[0], np.cumsum(sizes)])


def sisa_plan(n: int, shards: int, slices: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(order, bounds)``: ``order`` is a seeded permutation of the ``n`` training positions; shard k is
    ``order[bounds[k, 0]:bounds[k, R]]`` and its slice j (0-based) is ``order[bounds[k, j]:bounds[k, j + 1]]``."""
    if shards * slices > n:
        raise ValueError(f"SISA needs at least shards*slices = {shards * slices} training examples, got {n}")
    rng = np.random.default_rng(np.random.SeedSequence([derive_seed(seed, "sisa-plan")]))
    order = rng.permutation(n).astype(np.int64)
    shard_edges = _split_edges(0, n, shards)
    bounds = np.stack([_split_edges(int(shard_edges[k]), int(shard_edges[k + 1] - shard_edges[k]), slices)
                       for k in range(shards)])
    return order, bounds


def locate(order: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per training position: its shard and its (0-based) slice."""
    n_shards, n_slices = bounds.shape[0], bounds.shape[1] - 1
    shard_of, slice_of = np.empty(order.size, np.int64), np.empty(order.size, np.int64)
    for k in range(n_shards):
        for j in range(n_slices):
            members = order[bounds[k, j]:bounds[k, j + 1]]
            shard_of[members], slice_of[members] = k, j
    return shard_of, slice_of


def stage_epochs(total: int, slices: int) -> list[int]:
    """The reference's schedule (``sisa.py``): stage r (1-based) trains ⌊2Er/(R+1)⌋ − ⌊2E(r−1)/(R+1)⌋ epochs, so
    the example passes Σ_r e_r·r/R ≈ E epochs over the full shard. Integer arithmetic (the reference uses floats)."""
    return [(2 * total * r) // (slices + 1) - (2 * total * (r - 1)) // (slices + 1) for r in range(1, slices + 1)]


def train_stages(spec: ModelSpec, recipe: TrainRecipe, fetch: Fetch, order: np.ndarray, bounds: np.ndarray,
                 removed: np.ndarray, *, shard: int, seed: int, epochs: list[int], start: int = 0,
                 start_state: Mapping[str, torch.Tensor] | None = None) \
        -> tuple[nn.Module, list[dict[str, torch.Tensor]], int]:
    """Train constituent ``shard`` through stages ``start+1 .. R`` from the state after stage ``start``
    (``start_state``; ``None`` with ``start = 0`` = its seeded fresh initialisation). Stage r trains on slices 1..r
    minus ``removed`` with ``recipe`` (epochs replaced by ``epochs[r-1]``), a fresh optimiser and a data order seeded
    by (seed, shard, r) — so a restart from a checkpoint continues exactly as training from scratch would. A stage
    with no example or no epoch leaves the state as it is. Returns the model, the state after each trained stage and
    the number of example passes."""
    model = spec.build(seed=derive_seed(seed, f"sisa-init-{shard}"))
    if start_state is not None:
        model.load_state_dict(dict(start_state), strict=True)
    states, passes = [], 0
    for r in range(start + 1, bounds.shape[1]):
        idx = order[bounds[shard, 0]:bounds[shard, r]]
        idx = idx[~removed[idx]]
        if idx.size and epochs[r - 1] > 0:
            x, y = fetch(idx)
            order_seed = derive_seed(seed, f"sisa-order-{shard}-{r}")
            batches = Batches(x, y, batch_size=recipe.batch_size, shuffle=True, seed=order_seed)
            fit(model, batches, replace(recipe, epochs=epochs[r - 1]), seed=order_seed)
            passes += epochs[r - 1] * int(idx.size)
        states.append(state_tensors(model))
    return model, states, passes


def _buffer_name(shard: int, stage: int, key: str) -> str:
    return f"k{shard}_r{stage}__{key.replace('.', '__')}"


class SISAEnsemble(nn.Module):
    """S constituents whose forward aggregates their predictions, plus SISA's state as buffers: the assignment
    (``sisa_order``, ``sisa_bounds``), the stage epochs, the seed, the positions removed so far and the checkpoints
    after stages 1..R−1 of every constituent (stage R is the constituent itself; stage 0 is its seeded init).

    Aggregation ``"vote"`` (paper default): returns log((v + s)/(A + C·s)) where v counts the A active constituents'
    argmax labels per class and s = ``smoothing``; its argmax is the plurality vote (ties go to the lowest class
    index, as ``np.argmax`` in the reference's ``aggregation.py``) and its softmax is the smoothed vote share.
    ``"softmax"``: log of the mean of the constituents' softmax. A constituent whose shard has no retained example
    left is inactive (it would be an untrained init) and does not vote."""

    def __init__(self, constituents: list[nn.Module], num_classes: int, *, order: np.ndarray, bounds: np.ndarray,
                 epochs: list[int], seed: int, aggregation: str = "vote", smoothing: float = 0.5) -> None:
        super().__init__()
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        self.constituents = nn.ModuleList(constituents)
        self.num_classes, self.aggregation, self.smoothing = num_classes, aggregation, smoothing
        self.register_buffer("sisa_order", torch.as_tensor(order, dtype=torch.int64))
        self.register_buffer("sisa_bounds", torch.as_tensor(bounds, dtype=torch.int64))
        self.register_buffer("sisa_stage_epochs", torch.tensor(epochs, dtype=torch.int64))
        self.register_buffer("sisa_seed", torch.tensor(seed, dtype=torch.int64))
        self.register_buffer("sisa_removed", torch.zeros(order.size, dtype=torch.bool))
        self.register_buffer("sisa_active", torch.ones(len(constituents), dtype=torch.bool))
        self.checkpoints = nn.Module()

    @property
    def n_shards(self) -> int:
        return len(self.constituents)

    @property
    def n_slices(self) -> int:
        return int(self.sisa_bounds.shape[1]) - 1

    def plan(self) -> tuple[np.ndarray, np.ndarray]:
        return self.sisa_order.numpy(), self.sisa_bounds.numpy()

    def checkpoint(self, shard: int, stage: int) -> dict[str, torch.Tensor] | None:
        """The state after ``stage`` (0 = fresh init, returned as ``None``; R = the constituent itself)."""
        if stage == 0:
            return None
        if stage == self.n_slices:
            return state_tensors(self.constituents[shard])
        keys = self.constituents[shard].state_dict().keys()
        return {key: getattr(self.checkpoints, _buffer_name(shard, stage, key)).clone() for key in keys}

    def set_checkpoint(self, shard: int, stage: int, state: Mapping[str, torch.Tensor]) -> None:
        """Store the state after ``stage`` (1..R), replacing — and so deleting — the superseded one."""
        if stage == self.n_slices:
            self.constituents[shard].load_state_dict(dict(state), strict=True)
            return
        for key, value in state.items():
            self.checkpoints.register_buffer(_buffer_name(shard, stage, key), value.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = torch.stack([c(x) for c, on in zip(self.constituents, self.sisa_active.tolist(), strict=True) if on])
        if self.aggregation == "softmax":
            return torch.logsumexp(F.log_softmax(outs, dim=-1), dim=0) - math.log(outs.shape[0])
        votes = F.one_hot(outs.argmax(dim=-1), self.num_classes).sum(dim=0).to(outs.dtype)
        return torch.log((votes + self.smoothing) / (outs.shape[0] + self.num_classes * self.smoothing))
