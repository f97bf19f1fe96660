"""Test doubles for the tier-0/1 metric tests (imported by tests/metrics/test_*.py; not a test module).

* :class:`LookupLogits` — a model whose input is an example index and whose output is a row of a fixed table, so a
  test sets every example's logits (hence loss, confidence, entropy, margin) exactly.
* :func:`lookup_dataset` / :func:`lookup_ctx` — a dataset whose inputs are those indices, and a context over it.
* :func:`logits_with` — logits with a given true-class probability (and a chosen argmax).
* :func:`blobs` — a tiny 2-D Gaussian-blob dataset on which real models train in well under a second.
* :func:`registered` — the registered metrics of a family (or module): a family's tests cover a metric added later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from expunge.data.datasets import Dataset, from_arrays
from expunge.data.request import ForgetRequest, Splits
from expunge.metrics.base import METRICS, EvalContext, RunInfo
from expunge.train.loop import TrainRecipe

TINY = TrainRecipe(epochs=15, batch_size=32, optimizer="adam", lr=1e-2)


class LookupLogits(nn.Module):
    """logits(x) = table[int(x[:, 0])] (the table is a buffer, so two tables give two model fingerprints)."""

    def __init__(self, table: np.ndarray | torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", torch.as_tensor(np.asarray(table), dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x[:, 0].long()]


class LookupFeatures(nn.Module):
    """features(x) = feats[int(x[:, 0])], logits = head(features)."""

    def __init__(self, feats: np.ndarray, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("feats", torch.as_tensor(np.asarray(feats), dtype=torch.float32))
        self.head = nn.Linear(self.feats.shape[1], num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.feats[x[:, 0].long()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.feats[x[:, 0].long()])


class LookupFeaturesNoMethod(nn.Module):
    """Same outputs, but without ``features``: the fallback must hook the head's input."""

    def __init__(self, feats: np.ndarray, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("feats", torch.as_tensor(np.asarray(feats), dtype=torch.float32))
        self.head = nn.Linear(self.feats.shape[1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.feats[x[:, 0].long()])


def logits_with(p_true: float, y: int, num_classes: int, argmax: int | None = None) -> np.ndarray:
    """Log-probabilities with p[y] = p_true; the rest spread evenly, or (``argmax`` given) mostly on ``argmax``."""
    p = np.full(num_classes, (1.0 - p_true) / (num_classes - 1))
    if argmax is not None and argmax != y:
        p[:] = 1e-6
        p[y] = p_true
        p[argmax] = 1.0 - p_true - 1e-6 * (num_classes - 2)
    p[y] = p_true
    return np.log(p)


def lookup_dataset(y_train: Sequence[int], y_test: Sequence[int], num_classes: int) -> Dataset:
    n_tr, n_te = len(y_train), len(y_test)
    return from_arrays("lookup", x_train=np.arange(n_tr, dtype=np.float32)[:, None],
                       y_train=np.asarray(y_train), x_test=np.arange(n_tr, n_tr + n_te, dtype=np.float32)[:, None],
                       y_test=np.asarray(y_test), class_names=tuple(str(c) for c in range(num_classes)))


def lookup_ctx(y_train: Sequence[int], y_test: Sequence[int], forget: Sequence[int], num_classes: int,
               tables: Mapping[str, np.ndarray], *, forget_classes: tuple[int, ...] = (), seed: int = 0,
               run: RunInfo | None = None) -> EvalContext:
    """A context whose role models return ``tables[role]`` (rows: training examples then test examples)."""
    ds = lookup_dataset(y_train, y_test, num_classes)
    splits = Splits.from_ids(ds, np.asarray(forget, dtype=np.int64), forget_classes=forget_classes, seed=seed,
                             request=ForgetRequest("ids", ids=tuple(int(i) for i in forget)))
    return EvalContext(ds, splits, {role: LookupLogits(t) for role, t in tables.items()}, seed=seed, run=run)


def blobs(n_per_class_train: int = 30, n_per_class_test: int = 20, num_classes: int = 3, seed: int = 0,
          spread: float = 1.0) -> Dataset:
    """Gaussian blobs in 2-D at the vertices of a regular polygon of radius 3."""
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(num_classes) / num_classes
    centres = 3.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(num_classes), n)
        return (centres[y] + spread * rng.standard_normal((len(y), 2))).astype(np.float32), y

    (xtr, ytr), (xte, yte) = draw(n_per_class_train), draw(n_per_class_test)
    return from_arrays(f"blobs-{seed}", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte,
                       class_names=tuple(str(c) for c in range(num_classes)))


def regression_blobs(n_train: int = 90, n_test: int = 60, seed: int = 0, noise: float = 0.3) -> Dataset:
    """A regression problem: y = x · w + noise on 2-D Gaussian inputs (standardized scale)."""
    rng = np.random.default_rng(seed)
    w = np.array([1.0, -0.5])
    x = rng.standard_normal((n_train + n_test, 2)).astype(np.float32)
    y = (x @ w + noise * rng.standard_normal(len(x))).astype(np.float32)
    return from_arrays(f"regression-blobs-{seed}", x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:],
                       y_test=y[n_train:], task="regression")


def values(results: Mapping[str, Mapping[str, Any]], role: str) -> dict[str, float | None]:
    return {name: by_role[role].value for name, by_role in results.items() if role in by_role}


def registered(*, family: str | None = None, module: str | None = None) -> list[str]:
    """Names of the registered metrics of ``family`` and/or defined in ``expunge.metrics.<module>``."""
    return [n for n, c in METRICS.items() if (family is None or c.family == family)
            and (module is None or c.__module__ == f"expunge.metrics.{module}")]
