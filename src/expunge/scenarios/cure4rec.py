"""CURE4Rec's forget sets: every interaction of the most active ("core"), the least active ("edge") or random users
(``users:core:0.05``, ``users:edge:0.05``, ``users:random:0.05``).

Benchmark: Chen, Zhang, Zhang, Zhang, Lyu, Li, Gong, Yan, "CURE4Rec: A Benchmark for Recommendation Unlearning with
Deeper Influence", NeurIPS 2024 Datasets & Benchmarks, arXiv 2408.14393. Reference: xiye7lai/CURE4Rec
``read.py:delete`` — users are ranked by their number of *training* interactions; ``core`` takes the top
⌊F·users⌋, ``edge`` the bottom ⌊F·users⌋, ``random`` ⌊F·users⌋ users drawn uniformly; all their training
interactions are forgotten (the reference also drops their test interactions; here they stay in the test set, so
``recall20_test`` still covers them). The paper's fractions are 5% (default), 10%, 15%, 20%.

Choices: ties in interaction count are broken by user index (the reference's ``value_counts`` order is unspecified
for ties); ``random`` is seeded by the run's seed (the reference fixes NumPy's seed 42). The validation request (for
tuning) is the *next* block of the same ranking (users ranked ⌊F·users⌋..2⌊F·users⌋ − 1) for core and edge, and
another random draw (seed + 1000) for random.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from expunge._hparams import Hyperparams, hp
from expunge.data.datasets import Dataset
from expunge.data.request import ForgetRequest, RequestKind, register_request_kind
from expunge.errors import ForgetIsWholeTrainingSet, MalformedForgetSpec
from expunge.scenarios.base import SingleRequest, register_scenario

SELECTIONS = ("core", "edge", "random")


def ranked_users(dataset: Dataset, selection: str, rng: np.random.Generator) -> np.ndarray:
    """Users ordered as CURE4Rec selects them: most training interactions first (core), fewest first (edge), or a
    random permutation (random); ties by user index."""
    users, counts = np.unique(dataset.train.owners, return_counts=True)
    if selection == "random":
        return users[rng.permutation(len(users))]
    order = np.lexsort((users, -counts if selection == "core" else counts))
    return users[order]


@register_request_kind
class UsersKind(RequestKind):
    """``users:SELECTION:F``: every training interaction of a fraction F of the users, CURE4Rec's core / edge /
    random selection."""

    name, syntax = "users", "users:core:0.05"
    scenario = "cure4rec"
    tasks = frozenset({"recsys"})

    def parse(self, arg: str, written: str) -> ForgetRequest:
        selection, _, frac = arg.partition(":")
        frac, _, block = frac.partition("@")  # "@1": the validation block the spec of a tuning request names
        try:
            fraction = float(frac)
        except ValueError:
            fraction = -1.0
        if selection not in SELECTIONS or not 0.0 < fraction < 1.0 or (block and not block.isdigit()):
            raise MalformedForgetSpec(f"users:{arg}: write users:SELECTION:F with SELECTION one of "
                                      f"{', '.join(SELECTIONS)} and F a fraction of the users in (0, 1), e.g. "
                                      "users:core:0.05")
        extra = {"block": int(block)} if block and int(block) else {}
        return ForgetRequest("users", selection=selection, fraction=fraction, **extra)

    def spec(self, request: ForgetRequest) -> str:
        block = int(request.args.get("block", 0))
        return f"users:{request.selection}:{request.fraction:g}" + (f"@{block}" if block else "")

    def select(self, request: ForgetRequest, dataset: Dataset, rng: np.random.Generator) \
            -> tuple[np.ndarray, tuple[int, ...]]:
        ranked = ranked_users(dataset, request.selection, rng)
        n = int(np.floor(request.fraction * len(ranked)))
        block = int(request.args.get("block", 0))
        chosen = ranked[block * n:(block + 1) * n]
        if n == 0 or len(chosen) == 0:
            raise ForgetIsWholeTrainingSet(f"users:{request.selection}:{request.fraction:g} selects no user of "
                                           f"{dataset.name} ({len(ranked)} users). Fix: use a larger fraction")
        if len(chosen) >= len(ranked):
            raise ForgetIsWholeTrainingSet(f"users:{request.selection}:{request.fraction:g} selects every user of "
                                           f"{dataset.name}; nothing would remain. Fix: use a smaller fraction")
        return dataset.train.ids[np.isin(dataset.train.owners, chosen)], ()


@dataclass(frozen=True, kw_only=True)
class Cure4RecParams(Hyperparams):
    selection: Literal["core", "edge", "random"] = hp("core", "which users: most active, least active or random",
                                                      choices=SELECTIONS)
    fraction: float = hp(0.05, "fraction of the users whose interactions are all deleted", low=0.0, low_open=True,
                         high=0.5)


@register_scenario
class Cure4Rec(SingleRequest[Cure4RecParams]):
    """Forget every interaction of CURE4Rec's core, edge or random users (recommenders)."""

    name = "cure4rec"
    Params = Cure4RecParams
    request_kind = "users"
    tasks = frozenset({"recsys"})
    objective_metrics = ("recall20_forget", "recall20_test", "mia_rank_auc")

    def request(self, dataset: Dataset, *, seed: int, validation: bool) -> ForgetRequest:
        args = {"selection": self.params.selection, "fraction": self.params.fraction}
        if validation and self.params.selection != "random":
            args["block"] = 1  # deterministic selections: the next block of users, never the evaluated one
        return ForgetRequest("users", **args)
