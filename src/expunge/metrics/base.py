"""The metric protocol, the evaluation context and :func:`evaluate`.

Every metric is computed for each model *role* present — ``unlearned``, ``original``, ``retrain`` (the oracle) — so
numbers are always read side by side. A metric that needs a role or input that is missing returns
``MetricValue(None, reason=...)``, never a made-up 0 or 0.5. Per-example outputs (logits) are computed once per
(role, split) and shared by all metrics (:meth:`EvalContext.logits`).
"""

from __future__ import annotations

import enum
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from expunge._registry import Registry
from expunge.data.datasets import Dataset
from expunge.data.request import Splits
from expunge.errors import NonFiniteOutputs
from expunge.train.batches import INFERENCE_BATCH_SIZE

Role = Literal["unlearned", "original", "retrain"]
SplitName = Literal["forget", "retain", "test"]
ROLES: tuple[Role, ...] = ("unlearned", "original", "retrain")


class Tier(enum.IntEnum):
    CHEAP = 0     # seconds: no training beyond the cached oracle
    STANDARD = 1  # minutes: a few extra trainings or fine-tunes
    GOLD = 2      # many models (shadows, repeated unlearning runs); opt-in


@dataclass(frozen=True)
class MetricValue:
    """A metric's value for one model; ``se`` (standard error, when the metric can estimate it) feeds the "no power"
    check: a metric whose Original and Retrain values are within noise of each other cannot judge unlearning."""

    value: float | None
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    se: float | None = None

    def to_json(self) -> float | None:
        return None if self.value is None else float(self.value)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = INFERENCE_BATCH_SIZE) -> np.ndarray:
    """Logits in eval mode as float64 NumPy; the model's train/eval mode is restored."""
    was = model.training
    model.eval()
    out = [model(x[i:i + batch_size]).double() for i in range(0, len(x), batch_size)]
    model.train(was)
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


@dataclass(frozen=True)
class RunInfo:
    """How the models were produced: what tier-1/2 metrics need to train references, relearn or re-run the method.
    Fields are None when unknown (metrics needing them return None with a reason)."""

    model_spec: Any = None      # expunge.models.ModelSpec
    recipe: Any = None          # expunge.train.loop.TrainRecipe
    store: Any = None           # expunge.store.ArtifactStore
    method: str | None = None
    method_params: Mapping[str, Any] | None = None
    original_key: str | None = None


class EvalContext:
    """Models by role, the dataset and splits, and a cache of per-(role, split) logits."""

    def __init__(self, dataset: Dataset, splits: Splits, models: Mapping[str, nn.Module | None], *,
                 seed: int = 0, batch_size: int = INFERENCE_BATCH_SIZE, run: RunInfo | None = None,
                 extras: Mapping[str, Any] | None = None) -> None:
        self.dataset, self.splits, self.seed, self.batch_size = dataset, splits, seed, batch_size
        self.models = {k: v for k, v in models.items() if v is not None}
        self.run = run or RunInfo()
        self.extras: dict[str, Any] = dict(extras or {})  # scenario-provided inputs (e.g. triggered test images)
        self._logits: dict[tuple[str, str], np.ndarray | str] = {}  # logits, or why they are unusable

    def with_model(self, role: str, model: nn.Module) -> EvalContext:
        """A context with ``role`` set to ``model``, sharing the cached outputs of every other role."""
        new = EvalContext(self.dataset, self.splits, {**self.models, role: model}, seed=self.seed,
                          batch_size=self.batch_size, run=self.run, extras=self.extras)
        new._logits = {k: v for k, v in self._logits.items() if k[0] != role}
        return new

    def has(self, role: str) -> bool:
        return role in self.models

    def _split_tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if split == "test":
            part, pos = self.dataset.test, self.splits.test
        else:
            part, pos = self.dataset.train, getattr(self.splits, split)
        return part.x[pos], part.y[pos]

    def labels(self, split: str) -> np.ndarray:
        return self._split_tensors(split)[1].numpy()

    def logits(self, role: str, split: str) -> np.ndarray:
        """The ``role`` model's logits on ``split`` (cached). Raises :class:`NonFiniteOutputs` when any is NaN/±inf:
        a collapsed model has no accuracy, divergence or attack score, and :meth:`Metric.__call__` turns this into
        a None value with the reason."""
        key = (role, split)
        if key not in self._logits:  # checked once; a collapsed model's entry is the reason, not the array
            out = predict_logits(self.models[role], self._split_tensors(split)[0], self.batch_size)
            bad = ~np.isfinite(out).all(axis=1) if out.ndim == 2 else ~np.isfinite(out)
            self._logits[key] = out if not bad.any() else (
                f"the {role} model's outputs on the {split} split are not finite ({int(bad.sum())} of {len(out)} "
                "examples): a collapsed model")
        cached = self._logits[key]
        if isinstance(cached, str):
            raise NonFiniteOutputs(cached)
        return cached

    def test_class_mask(self) -> np.ndarray:
        """Boolean mask over the test split: True where the example's class was forgotten (class requests)."""
        return np.isin(self.labels("test"), self.splits.forget_classes)


class Metric(ABC):
    name: ClassVar[str]
    family: ClassVar[str]
    tier: ClassVar[Tier] = Tier.CHEAP
    higher_is_better: ClassVar[bool | None] = None  # None: closeness to the retrained model is what matters
    definition: ClassVar[str]
    needs: ClassVar[frozenset[str]] = frozenset()  # roles besides the evaluated one, e.g. {"retrain"}

    @abstractmethod
    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        """Value of the metric for the model in ``role``."""

    def __call__(self, ctx: EvalContext, role: str) -> MetricValue:
        missing = [n for n in self.needs if not ctx.has(n)]
        if missing:
            return MetricValue(None, reason=f"no {' / '.join(missing)} model")
        try:
            return self.compute(ctx, role)
        except NonFiniteOutputs as exc:  # never NaN, never a crash: None with the reason
            return MetricValue(None, reason=str(exc))

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"name": cls.name, "family": cls.family, "tier": int(cls.tier), "definition": cls.definition,
                "direction": {True: "higher is better", False: "lower is better", None: "closer to retrain"}[
                    cls.higher_is_better], "needs": sorted(cls.needs)}


METRICS: Registry[type[Metric]] = Registry("metric", package="expunge.metrics", entry_point_group="expunge.metrics")


def register_metric(cls: type[Metric]) -> type[Metric]:
    return METRICS.register(cls.name, cls)


def select_metrics(names: Iterable[str] | None = None, tier: int = 0) -> list[type[Metric]]:
    if names is not None:
        return [METRICS.get(n) for n in names]
    return [cls for _, cls in METRICS.items() if cls.tier <= tier]


def evaluate(ctx: EvalContext, names: Iterable[str] | None = None, *, tier: int = 0,
             roles: Iterable[str] = ROLES) -> dict[str, dict[str, MetricValue]]:
    """Compute the chosen metrics (by name, or every metric up to ``tier``) for every role present."""
    out: dict[str, dict[str, MetricValue]] = {}
    for cls in select_metrics(names, tier):
        metric = cls()
        out[cls.name] = {}
        for role in roles:
            if not ctx.has(role):
                continue
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                value = metric(ctx, role)
            if caught and value.reason is None:
                value = MetricValue(value.value, reason="; ".join(sorted({str(w.message) for w in caught})),
                                    details=value.details, se=value.se)
            out[cls.name][role] = value
    return out
