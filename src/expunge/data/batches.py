"""Seeded mini-batch iteration over in-memory tensors.

``torch.utils.data.DataLoader`` collates example by example, which dominates run time for the small in-memory
datasets expunge works with on CPU; :class:`Batches` slices whole tensors instead. Each ``iter()`` draws a new
permutation from a generator seeded by ``(seed, epoch)``, so a run is reproducible and two loaders with the same seed
yield the same batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

Batch = tuple[torch.Tensor, ...]
# attribute set on the inputs of forget-set batches: the training layer keeps BatchNorm running statistics frozen on
# forwards of such inputs (expunge.train.batchnorm)
FORGET_TAG = "_expunge_forget_rows"


class Batches:
    """Re-iterable mini-batches of ``tensors`` (same first dimension), optionally shuffled each epoch."""

    def __init__(self, *tensors: torch.Tensor, batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, on_batch: Callable[[int], None] | None = None, role: str | None = None) \
            -> None:
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("Batches needs tensors with the same first dimension")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.tensors = tensors
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        self._on_batch = on_batch
        # what the rows are ("forget", "retain"; None: unknown or mixed): the training loop keeps BatchNorm running
        # statistics frozen on forget-only batches (expunge.train.batchnorm)
        self.role = role

    @property
    def n_examples(self) -> int:
        return len(self.tensors[0])

    def __len__(self) -> int:
        n = self.n_examples
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n = self.n_examples
        if self.shuffle:
            g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0]))
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        self.epoch += 1
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            if self.drop_last and len(idx) < self.batch_size:
                break
            if self._on_batch is not None:
                self._on_batch(len(idx))
            batch = tuple(t[idx] for t in self.tensors)
            if self.role == "forget":
                setattr(batch[0], FORGET_TAG, True)
            yield batch


def cycle(batches: Batches) -> Iterator[Batch]:
    """Endless iteration (each pass reshuffled): pairs a short loader with a long one, as NegGrad+ does."""
    while True:
        yield from batches


class PairedBatches:
    """Each retain batch followed by the next forget batch, the forget loader cycled: ``(x_r, y_r, x_f, y_f)`` per
    step, ``len`` = the retain batches — one epoch is one pass over the retain set and every step has both terms
    (NegGrad+, reverse BPR)."""

    def __init__(self, retain: Batches, forget: Batches) -> None:
        self.retain, self.forget = retain, forget
        self._forget_iter = cycle(forget)

    def __len__(self) -> int:
        return len(self.retain)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for xr, yr in self.retain:
            xf, yf = next(self._forget_iter)
            yield xr, yr, xf, yf
