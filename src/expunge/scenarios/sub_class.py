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
from expunge.data.request import ForgetRequest, RequestKind, register_request_kind
from expunge.errors import InvalidForgetRequest
from expunge.scenarios.base import SingleRequest, register_scenario, request_seed


@register_request_kind
class SubclassKind(RequestKind):
    """``subclass:NAME``: every training example of one fine class of a model trained on coarse labels."""

    name, syntax = "subclass", "subclass:NAME"
    labels = "coarse"
    scenario = "sub-class"
    tasks = frozenset({"classification"})

    def parse(self, arg: str, written: str) -> ForgetRequest:
        return ForgetRequest("subclass", classes=(arg,))

    def spec(self, request: ForgetRequest) -> str:
        return f"subclass:{request.classes[0]}"

    def select(self, request: ForgetRequest, dataset: Dataset, rng: np.random.Generator) \
            -> tuple[np.ndarray, tuple[int, ...]]:
        fine = dataset.class_index(request.classes[0], fine=True)
        return dataset.train.ids[dataset.train.fine == fine], ()


@dataclass(frozen=True, kw_only=True)
class SubClassParams(Hyperparams):
    fine_class: str = hp("3", "the fine class to forget (index or name), e.g. 3 or Sandal")


@register_scenario
class SubClass(SingleRequest[SubClassParams]):
    """Forget one fine class from a model trained on coarse labels."""

    name = "sub-class"
    Params = SubClassParams
    request_kind = "subclass"
    preset_fallback = "full-class"  # a fine class is forgotten like a whole class
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
