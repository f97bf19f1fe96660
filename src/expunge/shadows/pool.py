"""Shadow-model pools: K models, each trained on a random half of a pool of examples, cached one by one.

Membership (Carlini et al., S&P 2022, tensorflow/privacy ``research/mi_lira_2021/train.py``): a (K, n) boolean matrix
drawn as the reference does — ``keep = uniform(K, n).argsort(0) < K/2`` — so every example is IN for exactly K/2
models and each model trains on about half of the pool. The matrix depends only on (K, n, seed); it is stored with
the pool (``shadow_pool`` artifact: the matrix as a uint8 tensor, and each row bit-packed in the manifest) and each
shadow's own manifest repeats its row.

Training: shadow k is built from ``derive_seed(seed, "shadow-k-init")`` and trained with the *same recipe as the
original* on its IN rows, in the order ``Batches(..., seed=derive_seed(seed, "shadow-k-order"))`` draws them — exactly
what :func:`expunge.train.loop.fit` does for the original and the oracle. Missing shadows are trained in groups
(``group_size``) by :func:`expunge.shadows.batched.train_models` (``torch.func`` batched when the architecture allows
and it is faster, else one by one: the same models up to float summation order), and every shadow is saved as soon
as its group ends: each shadow is its own cache entry, so an interrupted run resumes with the shadows still missing.

Keys: the pool key hashes (dataset fingerprint, pool fingerprint, model spec, recipe, K, seed); shadow k's key
hashes (pool key, k).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch import nn

from expunge._io import stable_hash
from expunge._seeds import derive_seed
from expunge.data.datasets import Dataset, Partition
from expunge.models import ModelSpec
from expunge.shadows import batched as _batched
from expunge.store import ArtifactStore
from expunge.store.artifacts import MANIFEST
from expunge.train.loop import TrainRecipe

log = logging.getLogger("expunge.shadows")
POOL_KIND, SHADOW_KIND = "shadow_pool", "shadow"
MEMBERSHIP_SALT = 0x5AD0


def membership_matrix(n_models: int, n_examples: int, seed: int) -> np.ndarray:
    """(K, n) bool: model k trains on example j iff ``keep[k, j]``; every column has exactly K/2 True.

    The reference's construction (train.py: ``keep = np.random.uniform(0, 1, (K, n)); order = keep.argsort(0);
    keep = order < int(pkeep · K)`` with pkeep = 0.5), seeded by ``seed``.
    """
    if n_models < 2 or n_models % 2:
        raise ValueError(f"the number of shadow models must be even and >= 2 (each example IN for K/2), got "
                         f"{n_models}")
    if n_examples < 1:
        raise ValueError("the pool is empty")
    rng = np.random.default_rng(np.random.SeedSequence([seed, MEMBERSHIP_SALT]))
    order = rng.uniform(size=(n_models, n_examples)).argsort(0)
    return order < n_models // 2


def pack_row(row: np.ndarray) -> str:
    return np.packbits(row.astype(bool)).tobytes().hex()


def unpack_row(hexstr: str, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bytes.fromhex(hexstr), dtype=np.uint8))[:n].astype(bool)


@dataclass(frozen=True, eq=False)
class Pool:
    """The examples shadows are drawn from: rows ``0..n_train-1`` are ``dataset.train`` in order, then (for the
    ``train+test`` pool) ``dataset.test``. U-LiRA needs held-out target examples in the pool (they must be IN for
    half of the shadows), hence test examples are part of it."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    ids: np.ndarray
    fine: np.ndarray
    n_train: int
    fingerprint: str

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def of(cls, dataset: Dataset, name: str = "train+test") -> Pool:
        tr, te = dataset.train, dataset.test
        if name == "train":
            parts = [tr]
        elif name == "train+test":
            parts = [tr, te]
        else:
            raise ValueError(f"unknown pool {name!r}: 'train' or 'train+test'")
        ids = np.concatenate([p.ids for p in parts])
        fp = stable_hash({"dataset": dataset.fingerprint, "pool": name, "ids": ids.tolist()})
        return cls(name, torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]), ids,
                   np.concatenate([p.fine for p in parts]), len(tr), fp)

    def rows_of_test(self, test_positions: np.ndarray) -> np.ndarray:
        if self.name != "train+test":
            raise ValueError("this pool holds no test example")
        return self.n_train + np.asarray(test_positions, dtype=np.int64)


@dataclass(eq=False)
class ShadowSet:
    """K shadows of one (dataset, pool, spec, recipe, seed); models are loaded from / saved to ``store``."""

    dataset: Dataset
    pool: Pool
    spec: ModelSpec
    recipe: TrainRecipe
    n_shadows: int
    seed: int
    store: ArtifactStore
    _models: dict[int, nn.Module] = field(default_factory=dict, repr=False)

    @cached_property
    def membership(self) -> np.ndarray:
        return membership_matrix(self.n_shadows, len(self.pool), self.seed)

    @cached_property
    def key(self) -> str:
        return self.store.key({"kind": POOL_KIND, "dataset": self.dataset.fingerprint, "pool": self.pool.fingerprint,
                               "spec": self.spec.to_dict(), "recipe": self.recipe.to_dict(), "K": self.n_shadows,
                               "seed": self.seed})

    def shadow_key(self, k: int) -> str:
        return self.store.key({"kind": SHADOW_KIND, "pool_key": self.key, "index": k})

    def seeds(self, k: int) -> tuple[int, int]:
        return derive_seed(self.seed, f"shadow-{k}-init"), derive_seed(self.seed, f"shadow-{k}-order")

    def in_rows(self, k: int) -> np.ndarray:
        return np.flatnonzero(self.membership[k])

    def missing(self) -> list[int]:
        return [k for k in range(self.n_shadows) if not self.store.exists(SHADOW_KIND, self.shadow_key(k))]

    def describe(self) -> dict[str, Any]:
        return {"pool_key": self.key, "pool": self.pool.name, "pool_fingerprint": self.pool.fingerprint,
                "n_pool": len(self.pool), "n_shadows": self.n_shadows, "seed": self.seed,
                "dataset": self.dataset.describe(), "model_spec": self.spec.to_dict(), "recipe": self.recipe.to_dict()}

    def _record_pool(self) -> None:
        """Store the membership matrix once (tensor + bit-packed rows in the manifest); check a stored one."""
        m = self.membership
        if self.store.exists(POOL_KIND, self.key):
            stored = json.loads((self.store.path(POOL_KIND, self.key) / MANIFEST).read_text())
            if stored.get("membership_rows") != [pack_row(r) for r in m]:
                raise RuntimeError(f"stored membership of shadow pool {self.key} differs from the seeded one")
            return
        manifest = {**self.describe(), "membership_rows": [pack_row(r) for r in m],
                    "membership_encoding": "np.packbits per shadow row, hex; rows = shadows, bits = pool rows",
                    "in_counts": m.sum(1).tolist(), "models_per_example": self.n_shadows // 2,
                    "construction": "uniform(K, n).argsort(0) < K/2 (tensorflow/privacy mi_lira_2021 train.py)"}
        self.store.save_tensors(POOL_KIND, self.key, {"membership": torch.as_tensor(m.astype(np.uint8))}, manifest)

    def ensure(self, *, batched: bool | None = None, group_size: int = 8, progress: bool = False) -> int:
        """Train and store every missing shadow (in groups of ``group_size``); return how many were trained."""
        self._record_pool()
        todo = self.missing()
        for start in range(0, len(todo), max(1, group_size)):
            group = todo[start:start + max(1, group_size)]
            jobs = [_batched.ModelJob(self.in_rows(k), *self.seeds(k)) for k in group]
            trained = _batched.train_models(self.spec, self.recipe, self.pool.x, self.pool.y, jobs, batched=batched,
                                            progress="shadow" if progress else None)
            for k, job, t in zip(group, jobs, trained, strict=True):
                manifest = {**self.describe(), "index": k, "init_seed": job.init_seed, "order_seed": job.order_seed,
                            "n_train_examples": int(job.positions.size), "membership_row": pack_row(self.membership[k]),
                            "train_log": t.log}
                self.store.save_model(SHADOW_KIND, self.shadow_key(k), t.model, manifest)
                self._models[k] = t.model
            log.info("shadow pool %s: %d/%d shadows stored", self.key[:12], self.n_shadows - len(self.missing()),
                     self.n_shadows)
        return len(todo)

    def model(self, k: int) -> nn.Module:
        if k not in self._models:
            m = self.spec.build(seed=0)
            self.store.load_model_into(SHADOW_KIND, self.shadow_key(k), m)
            self._models[k] = m.eval()
        return self._models[k]

    def models(self, indices: Sequence[int] | None = None) -> list[nn.Module]:
        return [self.model(k) for k in (range(self.n_shadows) if indices is None else indices)]

    def shadow_dataset(self, k: int) -> Dataset:
        """Shadow k's world as a :class:`Dataset`: train = its IN rows, test = its OUT rows (so an unlearning method
        run on it sees exactly the shadow's training data, e.g. for full-training-set statistics)."""
        member = self.membership[k]

        def part(mask: np.ndarray) -> Partition:
            rows = np.flatnonzero(mask)
            t = torch.as_tensor(rows)
            return Partition(x=self.pool.x[t], y=self.pool.y[t], ids=self.pool.ids[rows], fine=self.pool.fine[rows])

        return replace(self.dataset, name=f"{self.dataset.name}/shadow{k}", train=part(member), test=part(~member),
                       fingerprint=stable_hash({"shadow": self.shadow_key(k)}))
