"""Base class of the tier-1 metrics (underscore: not a metric family).

Tier-1 metrics fine-tune, train reference models or fit probes. Each declares the :class:`~expunge.metrics.base.RunInfo`
fields it uses in ``run_needs`` (shown by ``expunge metrics --json`` as ``run_needs``); when ``ctx.run`` lacks one
the value is None with a reason, never a guess. Everything random is seeded from ``ctx.seed`` through
:func:`expunge._seeds.derive_seed`, so a tier-1 evaluation is reproducible.
"""

from __future__ import annotations

import copy
from typing import ClassVar

from torch import nn

from expunge.metrics.base import Metric, Tier

RUN_FIELDS: tuple[str, ...] = ("model_spec", "recipe", "store")


class Tier1Metric(Metric):
    tier = Tier.STANDARD
    run_needs: ClassVar[tuple[str, ...]] = RUN_FIELDS



def private_copy(model: nn.Module) -> nn.Module:
    """A deep copy to fine-tune or compress; the evaluated model is never touched."""
    return copy.deepcopy(model)
