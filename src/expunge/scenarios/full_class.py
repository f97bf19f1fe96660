"""Full-class forgetting: every training example of one or more classes (``class:3``, ``class:Sandal``,
``classes:3,5``), and the ``class`` request kind that writes such requests.

The validation request used for tuning forgets as many *other* classes, drawn with seed + 1000 from the classes not
in the evaluation request, so a preset is never fitted to the class it is evaluated on.
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
class ClassKind(RequestKind):
    """``class:3``, ``class:NAME``, ``classes:3,5``: every training example of the named classes."""

    name, aliases, syntax = "class", ("classes",), "class:3 | class:NAME | classes:3,5"
    scenario = "full-class"
    tasks = frozenset({"classification", "graph"})

    def parse(self, arg: str, written: str) -> ForgetRequest:
        return ForgetRequest("class", classes=tuple(a.strip() for a in arg.split(",") if a.strip()))

    def spec(self, request: ForgetRequest) -> str:
        names = request.classes
        return f"class:{names[0]}" if len(names) == 1 else f"classes:{','.join(names)}"

    def select(self, request: ForgetRequest, dataset: Dataset, rng: np.random.Generator) \
            -> tuple[np.ndarray, tuple[int, ...]]:
        classes = tuple(sorted({dataset.class_index(c) for c in request.classes}))
        train = dataset.train
        return train.ids[np.isin(train.y.numpy(), classes)], classes


@dataclass(frozen=True, kw_only=True)
class FullClassParams(Hyperparams):
    classes: str = hp("3", "comma-separated class indices or names to forget, e.g. 3 or 3,5 or Sandal")

    def names(self) -> tuple[str, ...]:
        return tuple(c.strip() for c in self.classes.split(",") if c.strip())

    def validate(self) -> None:
        if not self.names():
            self._fail("classes", self.classes, "at least one class")


@register_scenario
class FullClass(SingleRequest[FullClassParams]):
    """Forget every training example of whole classes."""

    name = "full-class"
    Params = FullClassParams
    tasks = frozenset({"classification", "graph"})
    request_kind = "class"

    def request(self, dataset: Dataset, *, seed: int, validation: bool) -> ForgetRequest:
        if not validation:
            return ForgetRequest("class", classes=self.params.names())  # as written: records show "class:Sandal"
        chosen = sorted({dataset.class_index(c) for c in self.params.names()})
        others = np.setdiff1d(np.arange(dataset.num_classes), chosen)
        if others.size < len(chosen) or others.size < 2:
            raise InvalidForgetRequest(f"no other {len(chosen)} class(es) of {dataset.name} left for a validation "
                                       "request that keeps at least one class")
        rng = np.random.default_rng(np.random.SeedSequence([request_seed(seed, True), 0xC1A]))
        picked = sorted(int(c) for c in rng.choice(others, size=len(chosen), replace=False))
        return ForgetRequest("class", classes=tuple(str(c) for c in picked))
