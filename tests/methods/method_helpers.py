"""Helpers shared by the method tests (imported as a top-level module: pytest puts this folder on sys.path)."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from expunge.data.datasets import Dataset
from expunge.protocols.pipeline import Prepared


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def split_accuracy(model: nn.Module, prep: Prepared, split: str) -> float:
    """Accuracy of ``model`` on the training examples of ``prep``'s ``split`` ("forget" or "retain")."""
    pos, tr = getattr(prep.splits, split), prep.dataset.train
    return accuracy(model, tr.x[pos], tr.y[pos])


def permuted_labels(dataset: Dataset, seed: int) -> Dataset:
    """The dataset with every training label changed (a seeded permutation, shifted so none stays in place)."""
    g = torch.Generator().manual_seed(seed)
    y = dataset.train.y
    perm_y = (y[torch.randperm(len(y), generator=g)] + 1 + seed) % dataset.num_classes
    assert not torch.equal(perm_y, y)
    return dataclasses.replace(dataset, train=dataclasses.replace(dataset.train, y=perm_y))
