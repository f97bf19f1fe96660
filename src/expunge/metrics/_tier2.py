"""Shared machinery of the tier-2 metrics (U-LiRA, NeurIPS'23 ε-score, KLoM): configuration, the base class and
the types of the inputs the pipelines of :mod:`expunge.protocols.tier2` compute.

Tier-2 metrics judge what many models do; training and unlearning those models re-runs the method, which metrics
never do themselves (they do not import methods): they ask their context for the pipeline's output
(:meth:`~expunge.metrics.base.EvalContext.provided`) and a context without the providers gives None with the reason.

Configuration comes from ``ctx.extras["tier2"]`` (a :class:`Tier2Config` or a dict of its fields; the CLI's
``expunge evaluate --tier 2 --shadows K --models N``). Pipeline results are kept per context and configuration, so
the four ``ulira_*`` metrics and every role share one pipeline run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from expunge.errors import ExpungeError, InvalidHyperparameter
from expunge.metrics.base import EvalContext, Metric, MetricValue, Tier

EXTRAS_KEY = "tier2"


@dataclass(frozen=True)
class Tier2Config:
    """Sizes of the tier-2 pipelines. CPU defaults; the papers' values are noted per field."""

    shadows: int = 16               # U-LiRA K (Hayes et al.: 64; 128/256 for publication)
    models: int = 8                 # ε-score / KLoM N (NeurIPS'23: 512; KLoM paper: 100)
    heldout: int | None = None      # cap on U-LiRA held-out targets (default: class-matched, as many as forget)
    queries: tuple[str, ...] | None = None  # LiRA queries (default: as trained, metrics._common.training_queries)
    batched: bool | None = None     # shadows with torch.func: True, False, None = auto (prefer_batched)
    group_size: int = 8             # shadows trained (and saved) per group

    def __post_init__(self) -> None:
        if self.shadows < 2 or self.shadows % 2:
            raise InvalidHyperparameter(f"tier 2: the number of shadows must be even and >= 2 (each example is IN "
                                        f"for exactly K/2), got {self.shadows}")
        if self.models < 2:
            raise InvalidHyperparameter(f"tier 2: need at least 2 seeded models, got {self.models}")
        if self.group_size < 1:
            raise InvalidHyperparameter(f"tier 2: group_size must be >= 1, got {self.group_size}")

    @classmethod
    def from_ctx(cls, ctx: EvalContext) -> Tier2Config:
        raw = ctx.extras.get(EXTRAS_KEY)
        if raw is None:
            return cls()
        if isinstance(raw, Tier2Config):
            return raw
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in dict(raw).items() if k in known and v is not None}
        if "queries" in values:
            values["queries"] = tuple(values["queries"])
        return cls(**values)


class Tier2Metric(Metric):
    """Base of the tier-2 metrics: opt-in (Tier.GOLD); ``run_needs`` lists the RunInfo fields the pipeline uses
    (shown by ``expunge metrics``).

    :meth:`compute` is shared: a pipeline error (an :class:`ExpungeError`) gives None with the reason (a metric defined
    for the method's distribution of models sets ``unlearned_only``; :meth:`Metric.__call__` then gives the Original and
    the Retrain None). Subclasses implement :meth:`result` (the pipeline output for a role) and :meth:`value_from`."""

    tier = Tier.GOLD
    run_needs: ClassVar[tuple[str, ...]] = ("model_spec", "recipe", "store", "method")
    label: ClassVar[str] = "tier-2 metric"  # in "<label> unavailable: ..." reasons

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        # A collapsed model (NaN outputs; NonFiniteOutputs gives None with the reason): U-LiRA cannot score it, and
        # for the unlearned-only scores it means the method collapsed, whatever its re-runs give.
        ctx.logits(role, "forget")
        try:
            key = ("tier2", self.label, Tier2Config.from_ctx(ctx), *method_key(ctx))  # shared by one family
            res = ctx.cached(key, lambda: self.result(ctx, role), role=role, local=True)
        except ExpungeError as exc:
            return MetricValue(None, reason=f"{self.label} unavailable: {exc}")
        return self.value_from(res, ctx, role)

    def result(self, ctx: EvalContext, role: str) -> dict[str, Any]:
        raise NotImplementedError

    def value_from(self, res: dict[str, Any], ctx: EvalContext, role: str) -> MetricValue:
        raise NotImplementedError


def method_key(ctx: EvalContext) -> tuple[str, str]:
    """The method and its parameters, as part of a pipeline's key (the run info names them)."""
    return str(ctx.run.method), repr(sorted((ctx.run.method_params or {}).items()))


@dataclass
class ULiraInputs:
    forget_pos: np.ndarray     # target forget examples (positions in dataset.train)
    heldout_pos: np.ndarray    # target held-out examples (positions in dataset.test)
    shadow_unlearned: np.ndarray  # (n_f + n_h, K, A), NaN where the shadow did not train-then-unlearn the example
    shadow_out: np.ndarray        # (n_f + n_h, K, A), NaN where the shadow trained on the example
    queries: tuple[str, ...]
    info: dict[str, Any]


@dataclass
class OnionInputs:
    retain_pos: np.ndarray     # target retained examples (positions in dataset.train)
    heldout_pos: np.ndarray    # held-out examples class-matched to them (positions in dataset.test)
    shadow_in: np.ndarray      # (n_r + n_h, K, A), NaN where the shadow did not train on the example
    shadow_out: np.ndarray     # (n_r + n_h, K, A), NaN where the shadow trained on the example
    queries: tuple[str, ...]
    info: dict[str, Any]


@dataclass
class SeededOutputs:
    seeds: list[int]
    unlearned_phi: dict[str, np.ndarray]   # split -> (n, N)
    oracle_phi: dict[str, np.ndarray]
    unlearned_acc: dict[str, list[float]]  # split -> N accuracies
    oracle_acc: dict[str, list[float]]
    info: dict[str, Any]
    original_phi: dict[str, np.ndarray] = field(default_factory=dict)  # split -> (n, N); from_originals only


def mean_ratio(num: list[float], den: list[float]) -> float | None:
    d = float(np.mean(den))
    return None if d <= 0 or not np.isfinite(d) else float(np.mean(num)) / d


def to_list(a: np.ndarray | Mapping[str, Any] | Any) -> Any:
    return a.tolist() if isinstance(a, np.ndarray) else a
