"""Sub-class forgetting: one fine class of a model trained on coarse labels (``subclass:Sandal``; on digits the coarse
labels are the parity, so ``subclass:3`` forgets the 3s from an even/odd model).

The validation request forgets another fine class (seed + 1000) whose coarse group has at least two fine classes, so
the coarse class survives. The tuning objective's MIA term is ``mia_loss_auc_matched`` (the attack against the fine
class's own test examples): against the whole test set the coarse model's near-zero losses make the loss attack's
sign arbitrary, so two retrains of one seed can score 0.29 and 0.70 (:mod:`expunge.metrics.mia`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from expunge._hparams import Hyperparams, hp
from expunge.data.datasets import Dataset
from expunge.data.request import ForgetRequest
from expunge.errors import InvalidForgetRequest
from expunge.scenarios.base import SingleRequest, register_scenario, request_seed


@dataclass(frozen=True, kw_only=True)
class SubClassParams(Hyperparams):
    fine_class: str = hp("3", "the fine class to forget (index or name), e.g. 3 or Sandal")


@register_scenario
class SubClass(SingleRequest[SubClassParams]):
    """Forget one fine class from a model trained on coarse labels."""

    name = "sub-class"
    Params = SubClassParams
    labels = "coarse"
    # The whole-test loss attack is ill-posed here (see expunge.metrics.mia): tune against the matched one.
    objective_metrics = ("forget_acc", "test_acc", "mia_loss_auc_matched")

    def request(self, dataset: Dataset, *, seed: int, validation: bool) -> ForgetRequest:
        fine = dataset.class_index(self.params.fine_class, fine=True)
        if not validation:
            return ForgetRequest("subclass", classes=(self.params.fine_class,))
        groups = np.asarray(dataset.fine_to_coarse)
        sizes = np.bincount(groups)
        candidates = [c for c in range(len(groups)) if c != fine and sizes[groups[c]] >= 2]
        if not candidates:
            raise InvalidForgetRequest(f"{dataset.name} has no other fine class for a validation request")
        rng = np.random.default_rng(np.random.SeedSequence([request_seed(seed, True), 0x5C1]))
        return ForgetRequest("subclass", classes=(str(int(rng.choice(candidates))),))
