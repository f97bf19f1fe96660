"""Owner deletion: every example of K synthetic owners (``owners:K``), the shape of a real deletion request.

Owners are drawn among the non-negative owner ids: a negative id marks rows nobody owns, which no owner request
deletes (the world facts of an ``llm`` facts dataset, person −1; no other dataset has negative owners).

The validation request draws K other owners with seed + 1000 (same Original). On a federated dataset
(:mod:`expunge.data.federated`) the owners are the clients: ``owners:1`` forgets one whole client.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from expunge._hparams import Hyperparams, hp
from expunge.data.datasets import Dataset
from expunge.data.request import ForgetRequest, RequestKind, register_request_kind
from expunge.errors import ForgetIsWholeTrainingSet, InvalidForgetRequest, MalformedForgetSpec
from expunge.scenarios.base import SingleRequest, register_scenario


@register_request_kind
class OwnersKind(RequestKind):
    """``owners:K``: every training example of K owners drawn at random (seeded by the run's seed)."""

    name, syntax = "owners", "owners:5"
    scenario = "owners"
    # owner = a user; federated: a client; llm: a person of the facts corpus
    tasks = frozenset({"classification", "regression", "recsys", "federated", "llm"})

    def parse(self, arg: str, written: str) -> ForgetRequest:
        if not arg.isdigit() or int(arg) < 1:
            raise MalformedForgetSpec(f"owners:{arg}: give a positive number of owners, e.g. owners:5")
        return ForgetRequest("owners", n_owners=int(arg))

    def spec(self, request: ForgetRequest) -> str:
        return f"owners:{request.n_owners}"

    def select(self, request: ForgetRequest, dataset: Dataset, rng: np.random.Generator) \
            -> tuple[np.ndarray, tuple[int, ...]]:
        train = dataset.train
        if train.owners is None:
            raise InvalidForgetRequest(f"{dataset.name} has no owner ids; owners: requests need them")
        owners = np.unique(train.owners[train.owners >= 0])  # a negative owner is nobody's (an llm world fact)
        if request.n_owners >= len(owners):
            raise ForgetIsWholeTrainingSet(
                f"owners:{request.n_owners} asks for all {len(owners)} owners of {dataset.name}; nothing would "
                "remain. Fix: ask for fewer owners.")
        chosen = rng.choice(owners, size=request.n_owners, replace=False)
        return train.ids[np.isin(train.owners, chosen)], ()


@dataclass(frozen=True, kw_only=True)
class OwnersParams(Hyperparams):
    n_owners: int = hp(10, "number of owners whose examples are all deleted", low=1)


@register_scenario
class Owners(SingleRequest[OwnersParams]):
    """Forget every example of a few owners (users)."""

    name = "owners"
    Params = OwnersParams
    request_kind = "owners"
    # federated: owners:K forgets K clients; llm: K people
    tasks = frozenset({"classification", "regression", "recsys", "federated", "llm"})
    preset_fallback = "random"  # an owner's examples, like a random sample, come from every class

    def request(self, dataset: Dataset, *, seed: int, validation: bool) -> ForgetRequest:
        return ForgetRequest("owners", n_owners=self.params.n_owners)  # the draw is seeded by resolve()
