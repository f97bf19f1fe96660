"""Random forgetting: a uniformly drawn fraction of the training set (``random:0.1``).

The validation request draws another sample of the same size with seed + 1000 (same Original).
"""

from __future__ import annotations

from dataclasses import dataclass

from expunge._hparams import Hyperparams, hp
from expunge.data.datasets import Dataset
from expunge.data.request import ForgetRequest
from expunge.scenarios.base import SingleRequest, register_scenario


@dataclass(frozen=True, kw_only=True)
class RandomParams(Hyperparams):
    fraction: float = hp(0.1, "fraction of the training set to forget", low=0.0, low_open=True, high=0.99)


@register_scenario
class RandomSamples(SingleRequest[RandomParams]):
    """Forget a uniformly random fraction of the training examples."""

    name = "random"
    Params = RandomParams

    def request(self, dataset: Dataset, *, seed: int, validation: bool) -> ForgetRequest:
        return ForgetRequest("random", fraction=self.params.fraction)  # the draw is seeded by resolve()
