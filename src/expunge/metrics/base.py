"""The metric protocol, the evaluation context and :func:`evaluate`.

Every metric is computed for each model *role* present — ``unlearned``, ``original``, ``retrain`` (the oracle) — so
numbers are always read side by side. A metric that needs a role or input that is missing returns
``MetricValue(None, reason=...)``, never a made-up 0 or 0.5. Per-example outputs (logits) are computed once per
(role, split) and shared by all metrics (:meth:`EvalContext.logits`); everything else a metric wants to reuse goes
through :meth:`EvalContext.cached`, the one cache.

Metrics are pure judges: they read models, data and the inputs higher layers provide, and never import an
unlearning method (an import-linter contract enforces it).
"""

from __future__ import annotations

import enum
import hashlib
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
import torch
from torch import nn

from expunge._registry import Registry
from expunge.data.datasets import Dataset
from expunge.data.request import Splits
from expunge.errors import ExpungeError, NonFiniteOutputs
from expunge.models.inference import INFERENCE_BATCH_SIZE, predict_logits
from expunge.tasks import RequestView, Task, get_task, request_view

T = TypeVar("T")

Role = Literal["unlearned", "original", "retrain"]
SplitName = Literal["forget", "retain", "test"]
ROLES: tuple[Role, ...] = ("unlearned", "original", "retrain")


UNLEARNED_ONLY = ("defined for the unlearning method's distribution of models: computed for the unlearned role "
                  "only")


class MissingInput(ExpungeError):
    """A metric asked its context for an input no provider computes (see :meth:`EvalContext.provided`)."""


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

    def missing(self, *fields: str) -> str | None:
        """The reason a metric gives when any of ``fields`` is unknown (None when all are known)."""
        absent = [f for f in fields if getattr(self, f) is None]
        if not absent:
            return None
        return (f"run info lacks {', '.join(absent)}: this metric trains models or re-runs the method (evaluate a "
                "stored run with `expunge evaluate RUN --tier N` or through expunge.evaluate, which know them)")


Provider = Callable[..., Any]


class EvalContext:
    """Models by role, the dataset, its task and splits, and the one cache every metric uses (:meth:`cached`).

    ``providers`` are inputs computed by higher layers that metrics may ask for by name (:meth:`provided`): the
    tier-2 pipelines that re-run the method on shadow models live in :mod:`expunge.protocols`, which metrics never
    import; a context built by the library (:func:`expunge.protocols.pipeline.eval_context`) carries them."""

    def __init__(self, dataset: Dataset, splits: Splits, models: Mapping[str, nn.Module | None], *,
                 seed: int = 0, batch_size: int = INFERENCE_BATCH_SIZE, run: RunInfo | None = None,
                 extras: Mapping[str, Any] | None = None, providers: Mapping[str, Provider] | None = None) -> None:
        self.dataset, self.splits, self.seed, self.batch_size = dataset, splits, seed, batch_size
        self.task: Task = get_task(dataset.task)
        self.models = {k: v for k, v in models.items() if v is not None}
        self.run = run or RunInfo()
        self.extras: dict[str, Any] = dict(extras or {})  # scenario-provided inputs (e.g. triggered test images)
        self.providers: dict[str, Provider] = dict(providers or {})
        # Results keyed by model *content* (shared with every context derived by with_model: a do-nothing
        # "unlearned" model reuses the Original's work) and results of this context only (logits by role, large
        # per-model arrays): see cached().
        self._shared: dict[Hashable, Any] = {}
        self._local: dict[Hashable, Any] = {}
        self._pins: dict[str, nn.Module] = {}  # stateless models identified by id(): kept alive while cached

    def with_model(self, role: str, model: nn.Module) -> EvalContext:
        """A context with ``role`` set to ``model``, sharing the cached results of every other role."""
        new = EvalContext(self.dataset, self.splits, {**self.models, role: model}, seed=self.seed,
                          batch_size=self.batch_size, run=self.run, extras=self.extras, providers=self.providers)
        new._shared, new._pins = self._shared, self._pins
        new._local = {k: v for k, v in self._local.items() if k[0] is not None and k[0] != role}
        return new

    def has(self, role: str) -> bool:
        return role in self.models

    # --- the one cache ---------------------------------------------------------------------------------------------
    def model_key(self, role: str) -> str:
        """Content fingerprint of the model in ``role`` (stateless test doubles are pinned so their id stays unique)."""
        model = self.models[role]
        fp = model_fingerprint(model)
        if fp.startswith("id:"):
            self._pins[fp] = model
        return fp

    def cached(self, key: tuple[Hashable, ...], compute: Callable[[], T], *, role: str | None = None,
               local: bool = False) -> T:
        """``compute()`` once per ``key``; later calls return the stored result.

        ``role``: the result depends on the model in that role. Shared entries (the default) are then keyed by the
        model's content, so every context derived by :meth:`with_model` and every role holding the same model reuse
        them; ``local=True`` keeps the result in this context only (large per-model arrays, which would otherwise
        accumulate over every unlearned model of a benchmark), keyed by the role and dropped when a derived context
        replaces that role's model (local entries without a role — a pipeline's output — are not inherited). Keys
        also include the dataset, the three index sets and the seed.

        User warnings raised by ``compute`` (DegenerateInputWarning, scikit-learn's ConvergenceWarning) are replayed
        on every call, so each role sharing a result gets the same reason from :func:`evaluate`; an
        :class:`~expunge.errors.ExpungeError` is stored too and raised again."""
        if local:
            store, full = self._local, (role, *self._context_key(), *key)
        else:
            store, full = self._shared, (*self._context_key(), None if role is None else self.model_key(role), *key)
        if full not in store:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    value: Any = ("ok", compute())
                except ExpungeError as exc:
                    value = ("error", exc)
            kept = [(str(w.message), w.category) for w in caught
                    if issubclass(w.category, UserWarning) and not issubclass(w.category, DeprecationWarning)]
            store[full] = (value, kept)
        (status, result), kept = store[full]
        for message, category in kept:
            warnings.warn(message, category, stacklevel=2)
        if status == "error":
            raise result
        return result  # type: ignore[no-any-return]

    def _context_key(self) -> tuple[str, str, int]:
        if not hasattr(self, "_ckey"):
            h = hashlib.sha256()
            for a in (self.splits.forget, self.splits.retain, self.splits.test):
                h.update(np.asarray(a, dtype=np.int64).tobytes() + b"|")
            self._ckey = (self.dataset.fingerprint, h.hexdigest()[:32], int(self.seed))
        return self._ckey

    def provided(self, name: str, *args: Any) -> Any:
        """The input ``name`` computed by a higher layer's provider (once per context and arguments).

        Raises:
            MissingInput: no provider for ``name`` was given to this context."""
        if name not in self.providers:
            raise MissingInput(f"no provider for {name!r}: it re-runs the unlearning method, which metrics cannot do "
                               "(evaluate through expunge.evaluate / `expunge evaluate`, whose contexts carry it)")
        return self.cached(("provided", name, *args), lambda: self.providers[name](self, *args), local=True)

    # --- per-split data and outputs ---------------------------------------------------------------------------------
    @property
    def view(self) -> RequestView:
        """The data as they stand after the request (:func:`~expunge.tasks.request_view`; the stored tensors for
        every task but the graph task)."""
        return request_view(self.dataset, self.splits)

    def split_tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of ``split`` ("forget", "retain" or "test"). Retain and test inputs are the request
        view's (a graph's rows without the deleted elements), forget inputs the stored ones (the elements as they
        were); for every task but the graph task all three are the stored tensors."""
        if split == "test":
            return self.view.test_x[self.splits.test], self.dataset.test.y[self.splits.test]
        pos = getattr(self.splits, split)
        x = self.view.train_x if split == "retain" else self.dataset.train.x
        return x[pos], self.dataset.train.y[pos]

    def labels(self, split: str) -> np.ndarray:
        return self.split_tensors(split)[1].numpy()

    def logits(self, role: str, split: str) -> np.ndarray:
        """The ``role`` model's outputs on ``split`` as float64 (cached). Raises :class:`NonFiniteOutputs` when any is
        NaN/±inf: a collapsed model has no accuracy, divergence or attack score, and :meth:`Metric.__call__` turns
        this into a None value with the reason."""

        def compute() -> np.ndarray | str:
            out = predict_logits(self.models[role], self.split_tensors(split)[0], self.batch_size).double().numpy()
            bad = ~np.isfinite(out).all(axis=1) if out.ndim == 2 else ~np.isfinite(out)
            return out if not bad.any() else (  # checked once; a collapsed model's entry is the reason
                f"the {role} model's outputs on the {split} split are not finite ({int(bad.sum())} of {len(out)} "
                "examples): a collapsed model")

        cached = self.cached(("logits", split), compute, role=role, local=True)
        if isinstance(cached, str):
            raise NonFiniteOutputs(cached)
        return cached

    def test_class_mask(self) -> np.ndarray:
        """Boolean mask over the test split: True where the example's class was forgotten (class requests)."""
        return np.isin(self.labels("test"), self.splits.forget_classes)


def model_fingerprint(model: nn.Module) -> str:
    """Content hash of a model (class, parameter and buffer names, dtypes, shapes, bytes).

    A model without any state (test doubles) is identified by ``id`` instead; :meth:`EvalContext.model_key` pins the
    object so the id cannot be reused while the cache lives."""
    h = hashlib.sha256(type(model).__qualname__.encode())
    state = model.state_dict()
    if not state:
        return f"id:{id(model)}"
    for name, t in state.items():
        if not isinstance(t, torch.Tensor) or t.is_quantized:  # packed params of quantised models: identity only
            return f"id:{id(model)}"
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:32]


class Metric(ABC):
    name: ClassVar[str]
    family: ClassVar[str]
    tier: ClassVar[Tier] = Tier.CHEAP
    higher_is_better: ClassVar[bool | None] = None  # None: closeness to the retrained model is what matters
    definition: ClassVar[str]
    needs: ClassVar[frozenset[str]] = frozenset()  # roles besides the evaluated one, e.g. {"retrain"}
    run_needs: ClassVar[tuple[str, ...]] = ()  # RunInfo fields it uses (metrics that train or re-run the method)
    tasks: ClassVar[frozenset[str]] = frozenset({"classification"})  # tasks whose models it is defined for
    # Judges the unlearning method's distribution of models against the oracles' (tier-2 ε-score, KLoM): a value for
    # the unlearned role only, None with a reason for the Original and the Retrain.
    unlearned_only: ClassVar[bool] = False
    # The value an exact unlearner gets where the metric fixes one (KLoM 0, ε-score 1); None: compare with the Retrain.
    ideal: ClassVar[float | None] = None
    # The Retrain row is a noise floor measured with independent retrains (KLoM), not the oracle's own value: an
    # unlearned model bit-identical to the oracle scores the ``ideal``, at or below that floor.
    retrain_is_floor: ClassVar[bool] = False

    @abstractmethod
    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        """Value of the metric for the model in ``role``."""

    def __call__(self, ctx: EvalContext, role: str) -> MetricValue:
        """:meth:`compute` guarded: a missing role, run-info field, task or provided input, a collapsed model, or a
        role an ``unlearned_only`` metric does not judge, gives ``MetricValue(None, reason=...)`` — never a number that
        was not measured, never a crash."""
        if ctx.task.name not in self.tasks:
            return MetricValue(None, reason=f"defined for {' / '.join(sorted(self.tasks))} models; this is a "
                                            f"{ctx.task.name} task")
        missing = [n for n in self.needs if not ctx.has(n)]
        if missing:
            return MetricValue(None, reason=f"no {' / '.join(missing)} model")
        if (reason := ctx.run.missing(*self.run_needs_for(role))) is not None:
            return MetricValue(None, reason=reason)
        if self.unlearned_only and role != "unlearned":
            return MetricValue(None, reason=UNLEARNED_ONLY)
        try:
            value = self.compute(ctx, role)
        except (NonFiniteOutputs, MissingInput) as exc:
            return MetricValue(None, reason=str(exc))
        if value.value is not None and not math.isfinite(value.value):  # never report nan/inf as a measurement
            return MetricValue(None, reason=f"{self.name} came out non-finite ({value.value}) for the {role} model"
                                            f"{'; ' + value.reason if value.reason else ''}", details=value.details)
        return value

    def run_needs_for(self, role: str) -> tuple[str, ...]:
        """The RunInfo fields ``role``'s value needs (default: ``run_needs`` for every role; KLoM's Original and
        Retrain rows do not depend on the method under test)."""
        return self.run_needs

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"name": cls.name, "family": cls.family, "tier": int(cls.tier), "definition": cls.definition,
                "direction": {True: "higher is better", False: "lower is better", None: "closer to retrain"}[
                    cls.higher_is_better], "needs": sorted(cls.needs), "run_needs": list(cls.run_needs),
                "tasks": sorted(cls.tasks)}


METRICS: Registry[type[Metric]] = Registry("metric", package="expunge.metrics", entry_point_group="expunge.metrics")


def register_metric(cls: type[Metric]) -> type[Metric]:
    return METRICS.register(cls.name, cls)


def select_metrics(names: Iterable[str] | None = None, tier: int = 0, task: str | None = None) -> list[type[Metric]]:
    """Metrics by name, or every metric up to ``tier`` (defined for ``task`` when given)."""
    if names is not None:
        return [METRICS.get(n) for n in names]
    return [cls for _, cls in METRICS.items() if cls.tier <= tier and (task is None or task in cls.tasks)]


def evaluate(ctx: EvalContext, names: Iterable[str] | None = None, *, tier: int = 0,
             roles: Iterable[str] = ROLES) -> dict[str, dict[str, MetricValue]]:
    """Compute the chosen metrics (by name, or every metric of the context's task up to ``tier``) for every role
    present."""
    out: dict[str, dict[str, MetricValue]] = {}
    for cls in select_metrics(names, tier, ctx.task.name):
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
