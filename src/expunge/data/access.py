"""What an unlearning method may see, and the gate that enforces it.

A method declares :class:`DataAccess` flags; :class:`UnlearningData` hands out only what was declared and raises
:class:`~expunge.errors.UndeclaredDataAccess` otherwise, so a "zero-shot" method provably never read the retain set.
It counts every example it serves (reported with each run).

Retain data come from the task's :func:`~expunge.tasks.request_view`: for every task but the graph task these are the
stored rows of the retain set, as always; on a graph, the rows rebuilt without the deleted nodes or edges (and, for an
edge request, every training node), so no method trains on a deleted element through its retain data. Forget data
are the stored rows: the forgotten elements as they were.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from expunge.data.batches import FORGET_TAG, Batches
from expunge.data.datasets import Dataset
from expunge.data.facts import WordTokenizer, facts_corpus
from expunge.data.request import Splits
from expunge.errors import UndeclaredDataAccess
from expunge.store import ArtifactStore
from expunge.tasks import Task, get_task, request_view

# The name under which an Original's training-time state (what a task's trainer kept, e.g. a federation's server
# record: expunge.tasks.Task.train_from_scratch) is stored as a train statistic; methods read it with
# ``train_statistic(TRAINING_STATE, ..., batch_size=0)``
TRAINING_STATE = "training_state"


def statistic_key(name: str, original_key: str, batch_size: int) -> dict[str, Any]:
    """The store key parts of train statistic ``name`` of an Original (one formula for its writers and readers)."""
    return {"stat": name, "original": original_key, "batch_size": batch_size}


class DataAccess(enum.Flag):
    NONE = 0
    FORGET = enum.auto()         # forget examples with labels
    RETAIN = enum.auto()         # the full retain set
    RETAIN_SUBSET = enum.auto()  # a seeded subset of the retain set (fraction or per-class count)
    CLASS_IDS = enum.auto()      # only the ids of forgotten classes (class-level zero-shot methods)
    TRAIN_STATS = enum.auto()    # statistics of the full training set computed once per original and cached

    def describe(self) -> str:
        names = [m.name.lower() for m in DataAccess if m and m in self and m.name]
        return "+".join(names) if names else "none"


@dataclass
class AccessLog:
    forget_seen: int = 0
    retain_seen: int = 0
    train_stats: tuple[str, ...] = ()
    precompute_s: float = 0.0  # time spent computing (not loading) train statistics: one-off, amortised over requests

    def to_dict(self) -> dict[str, Any]:
        return {"forget_seen": self.forget_seen, "retain_seen": self.retain_seen,
                "train_stats": list(self.train_stats), "precompute_s": self.precompute_s}


class UnlearningData:
    """The data a method may use for one request, gated by its declared access."""

    def __init__(self, dataset: Dataset, splits: Splits, access: DataAccess, *, seed: int = 0,
                 store: ArtifactStore | None = None, original_key: str | None = None) -> None:
        self._dataset, self._splits, self._access = dataset, splits, access
        self._store, self._original_key = store, original_key
        view = request_view(dataset, splits)
        self._retain_x, self._retain = view.train_x, view.fit  # what a model trained after the request learns from
        self.seed = seed
        self.log = AccessLog()

    # --- always available: shapes and the request's description -------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self._dataset.num_classes

    @property
    def task(self) -> Task:
        """The dataset's task: its :meth:`~expunge.tasks.Task.batch_loss` is the loss of plain training on it."""
        return get_task(self._dataset.task)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._dataset.input_shape

    @property
    def input_range(self) -> tuple[float, float] | None:
        """Model-input values of a black and a white pixel, for image datasets that declare them (else None)."""
        return self._dataset.input_range

    @property
    def tokenizer(self) -> WordTokenizer | None:
        """The vocabulary of an ``llm`` dataset (:class:`~expunge.data.facts.WordTokenizer`: ``encode`` / ``decode``
        text, e.g. a refusal answer as a target), None for other tasks. The words, not data: nothing is counted as
        served, and a method never sees the paraphrased or perturbed answers the metrics read."""
        if self._dataset.task != "llm":
            return None
        return facts_corpus(self._dataset).tokenizer

    @property
    def n_forget(self) -> int:
        return int(self._splits.forget.size)

    @property
    def n_train(self) -> int:
        return len(self._dataset.train)

    @property
    def request_kind(self) -> str:
        return self._splits.request.kind

    @property
    def forget_owners(self) -> tuple[int, ...]:
        """The owners (users; on a federated dataset the clients) of the forget examples: *who* the request forgets,
        not their data, so always available like :attr:`request_kind` and never counted as served (a federated
        server knows which client asked to leave). Empty when the dataset has no owner ids."""
        owners = self._dataset.train.owners
        if owners is None:
            return ()
        return tuple(int(o) for o in np.unique(owners[self._splits.forget]))

    @property
    def train_owners(self) -> np.ndarray | None:
        """The owner (user; client) of every training example, by position (a copy; None when the dataset has none):
        ids, not data, like :attr:`forget_owners`. With :meth:`retain_positions` it groups the retain set by owner,
        e.g. into a federation's clients for :meth:`retain_loader` ``(positions=...)``."""
        owners = self._dataset.train.owners
        return None if owners is None else owners.copy()

    def _require(self, flag: DataAccess, what: str) -> None:
        if flag not in self._access:
            raise UndeclaredDataAccess(f"the method asked for {what} but declared access={self._access.describe()}; "
                                       f"declare DataAccess.{flag.name} to use it")

    def _batches(self, positions: np.ndarray, batch_size: int, shuffle: bool, seed: int | None, counter: str) \
            -> Batches:
        tr = self._dataset.train
        x = self._retain_x if counter == "retain_seen" else tr.x

        def count(n: int) -> None:
            setattr(self.log, counter, getattr(self.log, counter) + n)

        return Batches(x[positions], tr.y[positions], batch_size=batch_size, shuffle=shuffle,
                       seed=self.seed if seed is None else seed, on_batch=count,
                       role="forget" if counter == "forget_seen" else "retain")

    # --- gated ------------------------------------------------------------------------------------------------------
    @property
    def forget_classes(self) -> tuple[int, ...]:
        if not (DataAccess.CLASS_IDS in self._access or DataAccess.FORGET in self._access):
            self._require(DataAccess.CLASS_IDS, "the forgotten class ids")
        return self._splits.forget_classes

    def forget_loader(self, batch_size: int, *, shuffle: bool = True, seed: int | None = None) -> Batches:
        self._require(DataAccess.FORGET, "the forget set")
        return self._batches(self._splits.forget, batch_size, shuffle, seed, "forget_seen")

    def forget_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        self._require(DataAccess.FORGET, "the forget set")
        tr, pos = self._dataset.train, self._splits.forget
        self.log.forget_seen += int(pos.size)
        x = tr.x[pos]
        setattr(x, FORGET_TAG, True)  # forwards of it keep BatchNorm running statistics frozen (train.batchnorm)
        return x, tr.y[pos]

    def forget_positions(self) -> np.ndarray:
        """Sorted positions of the forget examples in the training partition (a copy): *which* examples are
        forgotten, not their content, so nothing is counted as served. For methods that keep per-example
        training-time state keyed by position (SISA's shard/slice assignment)."""
        self._require(DataAccess.FORGET, "the forget set's positions")
        return self._splits.forget.copy()

    def forget_ids(self) -> np.ndarray:
        """The ids of the forget examples, in :meth:`forget_tensors`' row order (a copy; nothing counted as served):
        matches :attr:`forget_detail`'s node ids to rows (a graph's deleted edges to their endpoints)."""
        self._require(DataAccess.FORGET, "the forget set's ids")
        return self._dataset.train.ids[self._splits.forget].copy()

    @property
    def forget_detail(self) -> dict[str, Any]:
        """What the request removes beyond whole examples (``Splits.detail``: a graph's deleted edges as node-id
        pairs under ``"deleted_edges"``); ``{}`` for requests of whole examples. Part of the forget set."""
        self._require(DataAccess.FORGET, "the forget request's detail")
        return dict(self._splits.detail)

    def retain_positions(self) -> np.ndarray:
        """Sorted positions of the retain examples in the training partition (a copy; nothing counted as served):
        lets a position-keyed method (SISA) map its bookkeeping onto :meth:`retain_tensors`' rows."""
        self._require(DataAccess.RETAIN, "the retain set's positions")
        return self._retain.copy()

    def retain_loader(self, batch_size: int, *, shuffle: bool = True, seed: int | None = None,
                      positions: np.ndarray | None = None) -> Batches:
        """Batches of the retain set, or of the retain examples at ``positions`` (a subset of
        :meth:`retain_positions`: one owner's, one federated client's).

        Raises:
            ValueError: ``positions`` holds a position outside the retain set."""
        self._require(DataAccess.RETAIN, "the retain set")
        if positions is None:
            return self._batches(self._retain, batch_size, shuffle, seed, "retain_seen")
        positions = np.asarray(positions, dtype=np.int64)
        if not np.isin(positions, self._retain).all():
            raise ValueError("retain_loader(positions=...) must name retain positions only (see retain_positions())")
        return self._batches(positions, batch_size, shuffle, seed, "retain_seen")

    def retain_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        self._require(DataAccess.RETAIN, "the retain set")
        tr, pos = self._dataset.train, self._retain
        self.log.retain_seen += int(pos.size)
        return self._retain_x[pos], tr.y[pos]

    def held_loader(self, batch_size: int) -> Batches:
        """The training data the model still holds — retain ∪ forget, in training-set order, unshuffled.

        For a single request this is the full training set, in :meth:`train_statistic`'s order; at request i of a
        sequential stream it is D without F_1 … F_{i−1}. For a full-set statistic recomputed on the *current* model
        (SSD's ``full_importance="current"``). Needs FORGET and RETAIN; each example is counted as what it is."""
        self._require(DataAccess.FORGET, "the forget set")
        self._require(DataAccess.RETAIN, "the retain set")
        positions = np.union1d(self._splits.retain, self._splits.forget)
        is_forget = np.isin(positions, self._splits.forget)
        cursor = 0

        def count(n: int) -> None:  # batches come in order, so the next n positions are the ones served
            nonlocal cursor
            k = int(is_forget[cursor:cursor + n].sum())
            self.log.forget_seen += k
            self.log.retain_seen += n - k
            cursor = (cursor + n) % positions.size

        tr = self._dataset.train
        return Batches(tr.x[positions], tr.y[positions], batch_size=batch_size, shuffle=False, on_batch=count)

    def retain_subset_positions(self, *, fraction: float | None = None, per_class: int | None = None,
                                seed: int | None = None) -> np.ndarray:
        """A seeded subset of the retain set: ``fraction`` of it, or up to ``per_class`` examples of each class."""
        if DataAccess.RETAIN not in self._access:
            self._require(DataAccess.RETAIN_SUBSET, "a retain subset")
        rng = np.random.default_rng(np.random.SeedSequence([self.seed if seed is None else seed, 0x5AB]))
        retain = self._retain
        if per_class is not None:
            labels = self._dataset.train.y.numpy()[retain]
            picks = [rng.permutation(retain[labels == c])[:per_class] for c in np.unique(labels)]
            return np.sort(np.concatenate(picks))
        if fraction is None:
            if self._splits.retain_subset is not None:
                return self._splits.retain_subset
            raise ValueError("retain_subset_positions needs fraction= or per_class=")
        k = max(1, round(fraction * retain.size))
        return np.sort(rng.choice(retain, size=k, replace=False))

    def retain_subset_loader(self, batch_size: int, *, fraction: float | None = None, per_class: int | None = None,
                             shuffle: bool = True, seed: int | None = None) -> Batches:
        positions = self.retain_subset_positions(fraction=fraction, per_class=per_class, seed=seed)
        return self._batches(positions, batch_size, shuffle, seed, "retain_seen")

    def train_statistic(self, name: str, compute: Callable[[Batches], Mapping[str, torch.Tensor]], *,
                        batch_size: int) -> dict[str, torch.Tensor]:
        """A statistic of the full training set (e.g. SSD's importances), computed once per original model and
        cached in the store; later requests on the same original only load it. ``compute`` receives unshuffled
        batches of the full training set. Time spent computing it is logged as ``precompute_s`` and reported apart
        from the per-request unlearning time. Also the place for other training-time state (SISA checkpoints,
        an analytic head's statistics): any dict of tensors keyed by ``name``."""
        self._require(DataAccess.TRAIN_STATS, f"the training-set statistic {name!r}")
        self.log.train_stats = (*self.log.train_stats, name)
        tr = self._dataset.train

        def run() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
            t0 = time.perf_counter()
            batches = Batches(tr.x, tr.y, batch_size=batch_size, shuffle=False)
            stat = dict(compute(batches))
            self.log.precompute_s += time.perf_counter() - t0
            return stat, {"statistic": name, "original": self._original_key, "batch_size": batch_size,
                          "compute_s": time.perf_counter() - t0}

        if self._store is None or self._original_key is None:
            return run()[0]
        key = self._store.key(statistic_key(name, self._original_key, batch_size))
        tensors, _, _ = self._store.get_or_create_tensors("train_stats", key, run)
        return tensors
