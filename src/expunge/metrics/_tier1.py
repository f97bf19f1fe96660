"""Base class of the tier-1 metrics (underscore: not a metric family).

Tier-1 metrics fine-tune, train reference models or fit probes. Each declares the :class:`~expunge.metrics.base.RunInfo`
fields it uses in ``run_needs`` (shown by ``expunge metrics --json`` as ``run_needs``); when ``ctx.run`` lacks one
the value is None with a reason, never a guess. Everything random is seeded from ``ctx.seed`` through
:func:`expunge.train.oracle.derive_seed`, so a tier-1 evaluation is reproducible.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
from torch import nn

from expunge.metrics._common import run_info_missing
from expunge.metrics.base import EvalContext, Metric, MetricValue, Tier
from expunge.train.batches import INFERENCE_BATCH_SIZE

RUN_FIELDS: tuple[str, ...] = ("model_spec", "recipe", "store")


class Tier1Metric(Metric):
    tier = Tier.STANDARD
    run_needs: ClassVar[tuple[str, ...]] = RUN_FIELDS

    def __call__(self, ctx: EvalContext, role: str) -> MetricValue:
        missing = run_info_missing(ctx, *self.run_needs)
        if missing:
            return MetricValue(None, reason=missing)
        return super().__call__(ctx, role)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {**super().describe(), "run_needs": list(cls.run_needs)}


def private_copy(model: nn.Module) -> nn.Module:
    """A deep copy to fine-tune or compress; the evaluated model is never touched."""
    return copy.deepcopy(model)


@torch.no_grad()
def accuracy_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = INFERENCE_BATCH_SIZE) -> float:
    """Top-1 accuracy in eval mode; the model's mode is restored. 0.0 for an empty set is never asked for."""
    was = model.training
    model.eval()
    correct = sum(int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
                  for i in range(0, len(x), batch_size))
    model.train(was)
    return correct / len(x)
