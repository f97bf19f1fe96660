"""Federated datasets: a registered classification dataset whose owners are K simulated clients (task ``federated``).

Registered names ``<base>-fed-iid`` and ``<base>-fed-dir<α>`` for the bases below. The partition is a property of the
dataset (fixed seed :data:`PARTITION_SEED`, like the owners of every dataset), so ``owners:1`` forgets one whole
client and every run sees the same clients:

* **IID**: a seeded permutation cut into K near-equal parts.
* **Dirichlet(α)** (Hsu, Qi, Brown, "Measuring the Effects of Non-Identical Data Distribution for Federated Visual
  Classification", arXiv 1909.06335; the partition the ConDa reference's ``client_data_distribution=dirichlet``
  draws): for every class, proportions p ~ Dir(α·1_K) split that class's examples among the clients. α = 0.1 gives
  clients holding one or two classes, α = 0.5 a milder skew. Choice: a draw in which some client gets fewer than
  ``MIN_CLIENT`` examples is redrawn (the common implementations' rule), so that every client trains.

Bases (the subset keeps one federation at ~1 min on one thread): ``fashion-mnist`` — a stratified seeded subset of
12,000 training and 2,000 test images, 10 clients (ConDa's default); ``digits`` — all 1,347 / 450 images, 10 clients,
for fast tests. The dataset's fingerprint adds the task and the partition to the base's, so its models are cached
apart from the base dataset's.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import torch

from expunge.data.datasets import Dataset, LabelSet, Partition, load_dataset, register_dataset
from expunge.errors import InvalidDataset

PARTITION_SEED = 20241005  # fixed: the clients are a property of the dataset, not of a run
MIN_CLIENT = 10
TASK = "federated"
# base → (training subset size or None for all, test subset size or None, number of clients)
BASES: dict[str, tuple[int | None, int | None, int]] = {"fashion-mnist": (12_000, 2_000, 10),
                                                        "digits": (None, None, 10)}
PARTITIONS: dict[str, float | None] = {"iid": None, "dir0.5": 0.5, "dir0.1": 0.1}


def iid_partition(n: int, clients: int, seed: int = PARTITION_SEED) -> np.ndarray:
    """Client of each of ``n`` examples: a seeded permutation cut into ``clients`` near-equal parts."""
    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype=np.int64)
    for k, part in enumerate(np.array_split(rng.permutation(n), clients)):
        out[part] = k
    return out


def dirichlet_partition(labels: np.ndarray, clients: int, alpha: float, *, seed: int = PARTITION_SEED,
                        min_size: int = MIN_CLIENT, max_draws: int = 1000) -> np.ndarray:
    """Client of each example: per class, Dir(α) proportions over the clients; redrawn until every client holds at
    least ``min_size`` examples.

    Raises:
        InvalidDataset: no draw in ``max_draws`` gives every client ``min_size`` examples (too many clients for the
            data at this α).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    for _ in range(max_draws):
        out = np.empty(len(labels), dtype=np.int64)
        for c in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == c))
            cuts = (np.cumsum(rng.dirichlet(np.full(clients, alpha))) * idx.size).astype(int)[:-1]
            for k, part in enumerate(np.split(idx, cuts)):
                out[part] = k
        if np.bincount(out, minlength=clients).min() >= min_size:
            return out
    raise InvalidDataset(f"no Dirichlet(alpha={alpha}) partition of {len(labels)} examples gives all {clients} "
                         f"clients at least {min_size} examples. Fix: fewer clients or a larger alpha")


def stratified_subset(labels: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """Sorted positions of a seeded subset of ``size`` examples with the classes in proportion (all if None)."""
    if size is None or size >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(labels == c))[:round(size * np.mean(labels == c))]
             for c in np.unique(labels)]
    return np.sort(np.concatenate(picks))


def _subset(part: Partition, keep: np.ndarray, owners: np.ndarray | None) -> Partition:
    return Partition(x=part.x[torch.as_tensor(keep)], y=part.y[torch.as_tensor(keep)], ids=part.ids[keep],
                     fine=part.fine[keep], owners=owners)


def federated_dataset(base: Dataset, *, name: str, clients: int, alpha: float | None,
                      n_train: int | None = None, n_test: int | None = None) -> Dataset:
    """``base`` (a fine-label classification dataset, optionally subset) with its training examples assigned to
    ``clients`` clients (IID when ``alpha`` is None, else Dirichlet(α)) as owners, under the ``federated`` task."""
    if base.task != "classification" or base.label_set != "fine":
        raise InvalidDataset(f"{name}: a federated dataset is built from a fine-label classification dataset, not "
                             f"{base.name} ({base.task}, {base.label_set} labels)")
    tr_keep = stratified_subset(base.train.fine, n_train, PARTITION_SEED)
    te_keep = stratified_subset(base.test.fine, n_test, PARTITION_SEED + 1)
    labels = base.train.fine[tr_keep]
    owners = (iid_partition(len(tr_keep), clients) if alpha is None
              else dirichlet_partition(labels, clients, alpha))
    fp = hashlib.sha256(f"{base.fingerprint}|{TASK}|{name}|{clients}|{alpha}|{n_train}|{n_test}|"
                        f"{PARTITION_SEED}".encode()).hexdigest()
    return replace(base, name=name, train=_subset(base.train, tr_keep, owners), test=_subset(base.test, te_keep, None),
                   fingerprint=fp, task=TASK)


def _register(base: str, partition: str) -> None:
    n_train, n_test, clients = BASES[base]
    alpha = PARTITIONS[partition]
    name = f"{base}-fed-{partition}"

    @register_dataset(name)
    def load(*, data_dir: str | None = None, labels: LabelSet = "fine") -> Dataset:
        if labels != "fine":
            raise InvalidDataset(f"{name} has fine labels only (its clients are drawn on them)")
        return federated_dataset(load_dataset(base, data_dir=data_dir), name=name, clients=clients, alpha=alpha,
                                 n_train=n_train, n_test=n_test)


for _base in BASES:
    for _partition in PARTITIONS:
        _register(_base, _partition)
