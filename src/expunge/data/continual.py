"""``fashion-mnist-cl``: the continual scenario's benchmark dataset — a stratified seeded subset of Fashion-MNIST,
6,000 training images (600 per class) and 2,000 test images (200 per class), fine labels, the classification task.

Why a subset: the continual benchmark (:mod:`expunge.scenarios.continual`, ``configs/continual.yaml``) trains, per
seed and method, five learning steps of the stream plus a joint retrain oracle at every forget step, and the whole
3-seed grid must run in minutes on one thread of a shared CPU. The subset is drawn with the federated datasets' fixed
seed and function (:func:`expunge.data.federated.stratified_subset`); its fingerprint adds the subset sizes to the
base's, so its models are cached apart.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from expunge.data.datasets import Dataset, LabelSet, load_dataset, register_dataset
from expunge.data.federated import PARTITION_SEED, _subset, stratified_subset
from expunge.errors import InvalidDataset

NAME = "fashion-mnist-cl"
N_TRAIN, N_TEST = 6_000, 2_000


def continual_subset(base: Dataset, *, name: str, n_train: int, n_test: int) -> Dataset:
    """``base`` reduced to stratified seeded subsets of ``n_train`` training and ``n_test`` test examples."""
    tr = stratified_subset(base.train.fine, n_train, PARTITION_SEED)
    te = stratified_subset(base.test.fine, n_test, PARTITION_SEED + 1)
    owners = base.train.owners[tr] if base.train.owners is not None else None
    fp = hashlib.sha256(f"{base.fingerprint}|continual-subset|{n_train}|{n_test}|{PARTITION_SEED}".encode()).hexdigest()
    return replace(base, name=name, train=_subset(base.train, tr, owners), test=_subset(base.test, te, None),
                   fingerprint=fp)


@register_dataset(NAME)
def load_fashion_mnist_cl(*, data_dir: str | None = None, labels: LabelSet = "fine") -> Dataset:
    if labels != "fine":
        raise InvalidDataset(f"{NAME} has fine labels only (its class-incremental tasks are drawn on them)")
    return continual_subset(load_dataset("fashion-mnist", data_dir=data_dir), name=NAME, n_train=N_TRAIN,
                            n_test=N_TEST)
