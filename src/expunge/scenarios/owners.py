"""Owner deletion: every example of K synthetic owners (``owners:K``), the shape of a real deletion request.

The validation request draws K other owners with seed + 1000 (same Original).
"""

from __future__ import annotations

from dataclasses import dataclass

from expunge._hparams import Hyperparams, hp
from expunge.data.datasets import Dataset
from expunge.data.request import ForgetRequest
from expunge.scenarios.base import SingleRequest, register_scenario


@dataclass(frozen=True, kw_only=True)
class OwnersParams(Hyperparams):
    n_owners: int = hp(10, "number of owners whose examples are all deleted", low=1)


@register_scenario
class Owners(SingleRequest[OwnersParams]):
    """Forget every example of a few owners (users)."""

    name = "owners"
    Params = OwnersParams

    def request(self, dataset: Dataset, *, seed: int, validation: bool) -> ForgetRequest:
        return ForgetRequest("owners", n_owners=self.params.n_owners)  # the draw is seeded by resolve()
