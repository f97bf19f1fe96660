"""Random forgetting: a uniformly drawn fraction of the training set (``random:0.1``).

The validation request draws another sample of the same size with seed + 1000 (same Original).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from expunge._hparams import Hyperparams, hp
from expunge.data.datasets import Dataset
from expunge.data.request import ForgetRequest, RequestKind, register_request_kind
from expunge.errors import MalformedForgetSpec
from expunge.scenarios.base import SingleRequest, register_scenario


@register_request_kind
class RandomKind(RequestKind):
    """``random:F``: a uniformly drawn fraction F of the training set (seeded by the run's seed)."""

    name, syntax = "random", "random:0.1"
    scenario = "random"
    tasks = frozenset({"classification", "regression", "recsys", "graph"})  # recsys: a share of the interactions

    def parse(self, arg: str, written: str) -> ForgetRequest:
        try:
            frac = float(arg)
        except ValueError:
            raise MalformedForgetSpec(f"random:{arg}: the fraction must be a number in (0, 1)") from None
        if not 0.0 < frac < 1.0:
            raise MalformedForgetSpec(f"random:{arg}: the fraction must be in (0, 1), e.g. random:0.1")
        return ForgetRequest("random", fraction=frac)

    def spec(self, request: ForgetRequest) -> str:
        return f"random:{request.fraction:g}"

    def select(self, request: ForgetRequest, dataset: Dataset, rng: np.random.Generator) \
            -> tuple[np.ndarray, tuple[int, ...]]:
        n = round(float(request.fraction) * len(dataset.train))
        return rng.choice(dataset.train.ids, size=n, replace=False), ()


@dataclass(frozen=True, kw_only=True)
class RandomParams(Hyperparams):
    fraction: float = hp(0.1, "fraction of the training set to forget", low=0.0, low_open=True, high=0.99)


@register_scenario
class RandomSamples(SingleRequest[RandomParams]):
    """Forget a uniformly random fraction of the training examples."""

    name = "random"
    Params = RandomParams
    request_kind = "random"
    tasks = frozenset({"classification", "regression", "recsys", "graph"})

    def request(self, dataset: Dataset, *, seed: int, validation: bool) -> ForgetRequest:
        return ForgetRequest("random", fraction=self.params.fraction)  # the draw is seeded by resolve()
