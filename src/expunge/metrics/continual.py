"""Continual family (tier 0): measures of a class-incremental stream with forget steps
(:mod:`expunge.scenarios.continual`).

The scenario hands the stream's state at the evaluated step through :attr:`EvalContext.extras` under
:data:`EXTRAS_KEY` as a :class:`StreamState`, so the core evaluation knows nothing about streams; without it every
metric here is ``None`` with a reason.

* ``cl_avg_acc``: test accuracy on the classes learned so far and still kept (the learned-and-kept classes' test
  images pooled; Fashion-MNIST's test classes are balanced, so this is the mean per-class accuracy);
* ``cl_removed_acc``: test accuracy on the classes removed by forget steps (a model that never learned them: 0);
* ``cl_bwt``: backward transfer (:func:`~expunge.metrics.functional.continual.backward_transfer`) over the learned
  tasks restricted to their kept classes: accuracy on them now minus right after each was learned. The learning-time
  accuracies come from the model's own trajectory (``StreamState.learned_acc[role]``); the retrain oracle is trained
  jointly on everything allowed and has none, so its value is ``None`` with that reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from expunge.metrics.base import EvalContext, Metric, MetricValue, register_metric
from expunge.metrics.functional.accuracy import accuracy
from expunge.metrics.functional.continual import backward_transfer
from expunge.metrics.functional.stats import proportion_se

EXTRAS_KEY = "continual"
# per-class (correct, total) on the test set, one mapping per learned task, right after that task was learned
PerClass = Mapping[int, tuple[int, int]]


@dataclass(frozen=True, eq=False)
class StreamState:
    """The stream at the evaluated step: the learned tasks (their classes, in the order learned), the classes kept
    and removed, and per role the per-class test accuracy right after each task was learned."""

    tasks: tuple[tuple[int, ...], ...]
    kept: tuple[int, ...]
    removed: tuple[int, ...]
    learned_acc: dict[str, list[PerClass]] = field(default_factory=dict)


def per_class_counts(logits: np.ndarray, y: np.ndarray, classes: Sequence[int]) -> dict[int, tuple[int, int]]:
    """(correct, total) per class of ``classes`` (argmax over every output)."""
    pred = np.asarray(logits).argmax(axis=1)
    return {int(c): (int(np.sum((pred == y) & (y == c))), int(np.sum(y == c))) for c in classes}


def pooled(counts: PerClass, classes: Sequence[int]) -> float | None:
    correct = sum(counts[c][0] for c in classes if c in counts)
    total = sum(counts[c][1] for c in classes if c in counts)
    return correct / total if total else None


def _state(ctx: EvalContext) -> StreamState | None:
    st = ctx.extras.get(EXTRAS_KEY)
    return st if isinstance(st, StreamState) else None


NO_STREAM = "no continual stream (only the continual scenario evaluates one)"


class _ClassSetAccuracy(Metric):
    family = "continual"

    def classes(self, st: StreamState) -> tuple[int, ...]:
        raise NotImplementedError

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        st = _state(ctx)
        if st is None:
            return MetricValue(None, reason=NO_STREAM)
        classes = self.classes(st)
        if not classes:
            return MetricValue(None, reason="no class in this set at this step")
        y = ctx.labels("test")
        mask = np.isin(y, classes)
        acc = accuracy(ctx.logits(role, "test")[mask], y[mask])
        return MetricValue(acc, se=None if acc is None else proportion_se(acc, int(mask.sum())),
                           details={"classes": list(classes)})


@register_metric
class ContinualAverageAccuracy(_ClassSetAccuracy):
    name, higher_is_better = "cl_avg_acc", True
    definition = "test accuracy on the classes learned so far and still kept (continual scenario)"

    def classes(self, st: StreamState) -> tuple[int, ...]:
        return st.kept


@register_metric
class ContinualRemovedAccuracy(_ClassSetAccuracy):
    name = "cl_removed_acc"
    definition = "test accuracy on the classes removed by forget steps (continual scenario); compare with retrain (0)"

    def classes(self, st: StreamState) -> tuple[int, ...]:
        return st.removed


@register_metric
class ContinualBackwardTransfer(Metric):
    name, family, higher_is_better = "cl_bwt", "continual", True
    definition = ("backward transfer over the learned tasks' kept classes: test accuracy now minus right after each "
                  "was learned (GEM's BWT; negative = forgetting); continual scenario")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        st = _state(ctx)
        if st is None:
            return MetricValue(None, reason=NO_STREAM)
        history = st.learned_acc.get(role)
        if history is None:
            return MetricValue(None, reason=f"the {role} model has no learning-time accuracies (the oracle is "
                                            "trained jointly on everything allowed, not along the stream)")
        if len(history) != len(st.tasks):
            raise ValueError(f"{len(history)} learning-time accuracies for {len(st.tasks)} learned tasks")
        y = ctx.labels("test")
        now = per_class_counts(ctx.logits(role, "test"), y, st.kept)
        t = len(st.tasks)
        r = np.full((t, t), np.nan)
        for j, task in enumerate(st.tasks):
            kept = [c for c in task if c in st.kept]
            if not kept:
                continue
            r[j, j] = pooled(history[j], kept) if pooled(history[j], kept) is not None else np.nan
            r[-1, j] = pooled(now, kept) if pooled(now, kept) is not None else np.nan
        bwt = backward_transfer(r)
        if bwt is None:
            return MetricValue(None, reason="fewer than two learned tasks with kept classes")
        return MetricValue(bwt, details={"diagonal": [None if np.isnan(v) else float(v) for v in np.diag(r)],
                                         "now": [None if np.isnan(v) else float(v) for v in r[-1]]})
