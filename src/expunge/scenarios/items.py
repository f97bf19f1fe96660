"""Item deletion for recommenders: every training interaction with K items (``items:K``, drawn at random) or with
named items (``item:ID[,ID...]``, ids as in the data file) — the setting MMRecUN (Sinha et al., arXiv 2405.15328)
adds to user deletion: a licence revoked, an item legally removed.

The K items are drawn (seeded by the run's seed) among the items with at least one training interaction; the
validation request draws K other items with seed + 1000 (same Original). Test interactions with the items stay in
the test set (the request deletes training data; Recall@20 on the test set then shows what the model still
recommends).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from expunge._hparams import Hyperparams, hp
from expunge.data.datasets import Dataset
from expunge.data.request import ForgetRequest, RequestKind, register_request_kind
from expunge.errors import ForgetIsWholeTrainingSet, InvalidForgetRequest, MalformedForgetSpec
from expunge.scenarios.base import SingleRequest, register_scenario

RECSYS = frozenset({"recsys"})


def _trained_items(dataset: Dataset) -> np.ndarray:
    return np.unique(dataset.train.y.numpy())


@register_request_kind
class ItemsKind(RequestKind):
    """``items:K``: every training interaction with K items drawn at random (seeded by the run's seed)."""

    name, syntax = "items", "items:2"
    scenario = "items"
    tasks = RECSYS

    def parse(self, arg: str, written: str) -> ForgetRequest:
        if not arg.isdigit() or int(arg) < 1:
            raise MalformedForgetSpec(f"items:{arg}: give a positive number of items, e.g. items:2")
        return ForgetRequest("items", n_items=int(arg))

    def spec(self, request: ForgetRequest) -> str:
        return f"items:{request.n_items}"

    def select(self, request: ForgetRequest, dataset: Dataset, rng: np.random.Generator) \
            -> tuple[np.ndarray, tuple[int, ...]]:
        items = _trained_items(dataset)
        if request.n_items >= len(items):
            raise ForgetIsWholeTrainingSet(f"items:{request.n_items} asks for all {len(items)} items with training "
                                           f"interactions in {dataset.name}; nothing would remain. Fix: ask for fewer")
        chosen = rng.choice(items, size=request.n_items, replace=False)
        return dataset.train.ids[np.isin(dataset.train.y.numpy(), chosen)], ()


@register_request_kind
class ItemKind(RequestKind):
    """``item:ID[,ID...]``: every training interaction with the named items (ids as written in the data file)."""

    name, syntax = "item", "item:242"
    scenario = "items"
    tasks = RECSYS

    def parse(self, arg: str, written: str) -> ForgetRequest:
        names = tuple(a.strip() for a in arg.split(",") if a.strip())
        if not names:
            raise MalformedForgetSpec(f"item:{arg}: name at least one item id, e.g. item:242 or item:242,302")
        return ForgetRequest("item", items=names)

    def spec(self, request: ForgetRequest) -> str:
        return f"item:{','.join(request.items)}"

    def select(self, request: ForgetRequest, dataset: Dataset, rng: np.random.Generator) \
            -> tuple[np.ndarray, tuple[int, ...]]:
        lookup = {n: i for i, n in enumerate(dataset.class_names)}
        unknown = [n for n in request.items if n not in lookup]
        if unknown:
            raise InvalidForgetRequest(f"item id(s) {', '.join(unknown[:5])} do not occur in {dataset.name}. Fix: use "
                                       "item ids as written in the data file (the dataset's class_names)")
        chosen = [lookup[n] for n in request.items]
        return dataset.train.ids[np.isin(dataset.train.y.numpy(), chosen)], ()


@dataclass(frozen=True, kw_only=True)
class ItemsParams(Hyperparams):
    n_items: int = hp(2, "number of items whose training interactions are all deleted", low=1)


@register_scenario
class Items(SingleRequest[ItemsParams]):
    """Forget every training interaction with a few items (recommenders)."""

    name = "items"
    Params = ItemsParams
    request_kind = "items"
    tasks = RECSYS
    objective_metrics = ("recall20_forget", "recall20_test", "mia_rank_auc")

    def request(self, dataset: Dataset, *, seed: int, validation: bool) -> ForgetRequest:
        return ForgetRequest("items", n_items=self.params.n_items)  # the draw is seeded by resolve()
