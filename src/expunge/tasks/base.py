"""The task protocol and its registry.

A :class:`Task` is stateless: it turns raw targets into the tensor the models train on (:meth:`Task.targets`),
says how many outputs a model needs (:meth:`Task.num_outputs`), defines the training loss (:meth:`Task.loss`, the
mean over a batch) and the per-example loss membership-inference attacks score (:meth:`Task.example_losses`), and
names the metrics a report leads with (``headline_metrics``) and the criteria of retrain parity
(``parity_criteria``: metric → absolute tolerance on the gap to the Retrain; ``per_example_criteria``: the tier-2
per-example criteria added on the request kinds ``per_example_kinds``, where the population criteria have no power).
It imports nothing above the registry, so every layer may use it.

:meth:`Task.request_view` is the one hook for tasks whose examples are not independent (a graph's nodes): how a model
trained or evaluated *after* a request sees the data. The default (None) keeps the stored tensors and trains on the
retain set; :func:`request_view` is what the oracle, the method data gate and the metrics read.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from expunge._registry import Registry
from expunge.errors import ExpungeError

Batch = tuple[torch.Tensor, ...]


class UnsupportedTask(ExpungeError, ValueError):
    """A method, metric or request kind was asked to work on a task it does not support."""


@dataclass(frozen=True, eq=False)
class RequestView:
    """The data as it stands after a request, for tasks whose examples depend on each other.

    ``train_x`` / ``test_x``: the inputs of every training / test example (rows aligned with ``dataset.train`` /
    ``dataset.test``) once the request's elements are gone (a graph: each node's neighbourhood without the deleted
    nodes and edges). ``fit``: the training positions a model trained after the request learns from (default the
    retain set; an edge request keeps every node). The retrain oracle trains on ``train_x[fit]``, methods' retain
    data are those rows, and the metrics' retain and test splits read ``train_x`` / ``test_x``; the forget split
    keeps the stored rows (the forgotten elements as they were)."""

    train_x: torch.Tensor
    test_x: torch.Tensor
    fit: np.ndarray


def request_view(dataset: Any, splits: Any) -> RequestView:
    """The :class:`RequestView` of ``splits`` on ``dataset``: its task's, else the stored tensors and the retain set
    (every task but the graph task: exactly what was used before views existed)."""
    view = get_task(dataset.task).request_view(dataset, splits)
    return view if view is not None else RequestView(dataset.train.x, dataset.test.x, splits.retain)


class Task(ABC):
    name: ClassVar[str]
    summary: ClassVar[str]
    headline_metrics: ClassVar[tuple[str, ...]]
    parity_criteria: ClassVar[Mapping[str, float]]
    # Per-example criteria (tier 2: U-LiRA, KLoM) judged on records of these request kinds; {} = none for the task.
    per_example_criteria: ClassVar[Mapping[str, float]] = {}
    per_example_kinds: ClassVar[frozenset[str]] = frozenset()
    # Of those, the criteria judged one-sidedly (a distance to the oracles: lower is closer, so only "above" misses)
    one_sided_criteria: ClassVar[frozenset[str]] = frozenset()
    # The bench page's (expunge results --format markdown) forget / retain / test / MIA columns; () keeps the page's
    # classification columns (forget_acc, retain_acc, test_acc and the request's MIA AUC). The parity column then
    # judges ``parity_criteria``.
    report_columns: ClassVar[tuple[str, ...]] = ()
    # More metrics the bench page shows in a second table per request (mean ± CI per model); () = none.
    page_metrics: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def targets(self, y: Any) -> torch.Tensor:
        """Raw targets as the tensor models train on; raises :class:`ValueError` naming what is wrong."""

    @abstractmethod
    def num_outputs(self, targets: torch.Tensor, num_classes: int) -> int:
        """Number of model outputs for these targets (``num_classes`` is the dataset's class count, 0 if none)."""

    @abstractmethod
    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean training loss over a batch."""

    @abstractmethod
    def example_losses(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Per-example loss (float64) of model outputs, the feature loss-based membership attacks score."""

    def batch_loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """The loss of ``model`` on ``(x, y)``: the :func:`~expunge.train.loop.train_loop` loss of plain training."""
        return self.loss(model(batch[0]), batch[1])

    def request_view(self, dataset: Any, splits: Any) -> RequestView | None:
        """How models trained or evaluated after the request ``splits`` see ``dataset`` (a ``Dataset`` and its
        ``Splits``; typed loosely because tasks sit below the data layer). None, the default: the stored tensors, and
        training on the retain set. Override for data whose examples depend on each other
        (:mod:`expunge.tasks.graph`)."""
        return None

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"name": cls.name, "summary": cls.summary, "headline_metrics": list(cls.headline_metrics),
                "parity_criteria": dict(cls.parity_criteria), "per_example_criteria": dict(cls.per_example_criteria),
                "per_example_kinds": sorted(cls.per_example_kinds)}


TASKS: Registry[type[Task]] = Registry("task", package="expunge.tasks", entry_point_group="expunge.tasks")
_INSTANCES: dict[str, Task] = {}


def register_task(cls: type[Task]) -> type[Task]:
    return TASKS.register(cls.name, cls)


def get_task(name: str) -> Task:
    """The (stateless, shared) instance of task ``name``."""
    if name not in _INSTANCES:
        _INSTANCES[name] = TASKS.get(name)()
    return _INSTANCES[name]


def check_supported(what: str, name: str, supported: Collection[str], task: str) -> None:
    """Refuse ``what`` ``name`` on ``task`` unless it declares support (before anything is trained)."""
    if task not in supported:
        raise UnsupportedTask(f"{what} {name!r} supports {', '.join(sorted(supported))} tasks, not {task}. Fix: pick a "
                              f"{what} that lists {task} in `expunge {what}s`")
