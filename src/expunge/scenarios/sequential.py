"""Sequential requests: k deletion requests one after another on the same model.

Request i forgets new examples F_i, drawn from what is still in the training set:

* ``random:F`` — a fresh random F·|D| examples per step (seeded by the run's seed and the step);
* ``owners:K`` — K fresh owners per step;
* ``classes:A,B,C`` — one class per step, in the order listed (at least k classes);
* ``ids:FILE`` — the file's ids split into k consecutive chunks.

The method at step i receives the model produced at step i−1 (the Original at step 1) — so methods that keep state on
the model they return (an analytic head's ridge statistics, SISA's shards) get it back — and the data of request i:
forget set F_i, retain set D \\ (F_1 ∪ … ∪ F_i) (built with :meth:`Splits.from_ids`, which validates). The
Original's key is passed at every step, so cached training-set statistics (SSD's importances) are reused.

Step i is evaluated like a single request whose forget set is the cumulative F_1 ∪ … ∪ F_i: against its own retrain
oracle trained on D \\ (F_1 ∪ … ∪ F_i), beside the Original. One :class:`~expunge.record.RunRecord` per step, with
``step``, ``k`` and ``step_request`` (F_i's description) in its ``extra``; ``forget`` and
``request`` describe the cumulative set. All k requests are built and validated before anything is trained.

The validation stream used for tuning draws with seed + 1000; a class stream forgets k other classes
(:func:`validation_base`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from expunge._hparams import Hyperparams, hp
from expunge.data.datasets import Dataset
from expunge.data.request import ForgetRequest, Splits, dataset_for, request_syntax
from expunge.errors import InvalidForgetRequest, MalformedForgetSpec
from expunge.protocols.pipeline import prepare_splits, run_step
from expunge.record import RunRecord
from expunge.scenarios.base import Scenario, Setting, register_scenario, request_seed
from expunge.store import ArtifactStore
from expunge.train.loop import TrainRecipe


@dataclass(frozen=True, kw_only=True)
class SequentialParams(Hyperparams):
    base: str = hp("random:0.02", "what each request forgets: random:F | owners:K | classes:A,B,... (one per step) "
                                  "| ids:FILE (split in k chunks)")
    k: int = hp(3, "number of successive requests", low=1)

    def request(self) -> ForgetRequest:
        req = ForgetRequest.parse(self.base)
        if req.kind == "subclass":
            raise MalformedForgetSpec(f"sequential requests cannot be built from {self.base!r}: use random:F, "
                                      "owners:K, classes:A,B,... or ids:FILE")
        if req.kind == "class" and len(req.classes) < self.k:
            raise MalformedForgetSpec(f"sequential base {self.base!r} lists {len(req.classes)} class(es) but k = "
                                      f"{self.k}: list at least k classes (one per request)")
        if req.kind == "ids" and len(req.ids) < self.k:
            raise MalformedForgetSpec(f"sequential base {self.base!r} has {len(req.ids)} ids, fewer than k = {self.k}")
        return req

    def validate(self) -> None:
        if ":" not in self.base:
            self._fail("base", self.base, f"a forget spec ({request_syntax()})")


def _step_ids(base: ForgetRequest, dataset: Dataset, available: np.ndarray, step: int, k: int,
              rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, ...]]:
    """Ids (and class indices) forgotten by request ``step`` (0-based), drawn from ``available``."""
    train = dataset.train
    if base.kind == "random":
        n = round(float(base.fraction or 0.0) * len(train))
        if n >= available.size:
            raise InvalidForgetRequest(f"request {step + 1} of {k} would forget all {available.size} remaining "
                                       "examples; use a smaller fraction or fewer requests")
        return rng.choice(available, size=n, replace=False), ()
    if base.kind == "owners":
        if train.owners is None:
            raise InvalidForgetRequest(f"{dataset.name} has no owner ids; owners: requests need them")
        owners_left = np.unique(train.owners[np.isin(train.ids, available)])
        if (base.n_owners or 0) >= owners_left.size:
            raise InvalidForgetRequest(f"request {step + 1} of {k} asks for {base.n_owners} owners but only "
                                       f"{owners_left.size} remain; use fewer owners or fewer requests")
        chosen = rng.choice(owners_left, size=base.n_owners, replace=False)
        return train.ids[np.isin(train.owners, chosen) & np.isin(train.ids, available)], ()
    if base.kind == "class":
        c = dataset.class_index(base.classes[step])
        return train.ids[train.y.numpy() == c], (c,)
    return np.array_split(np.asarray(base.ids, dtype=np.int64), k)[step], ()


def _request(base: ForgetRequest, n_steps: int, ids: np.ndarray, first: int = 0) -> ForgetRequest:
    """The request covering ``n_steps`` steps of ``base`` from step ``first`` (its spec describes the set:
    random:0.06 after 3 × random:0.02, classes:1,2 after class:1 then class:2)."""
    if base.kind == "random":
        return ForgetRequest("random", fraction=round(float(base.fraction or 0.0) * n_steps, 12))
    if base.kind == "owners":
        return ForgetRequest("owners", n_owners=(base.n_owners or 0) * n_steps)
    if base.kind == "class":
        return ForgetRequest("class", classes=base.classes[first:first + n_steps])
    return ForgetRequest("ids", ids=tuple(int(i) for i in np.sort(ids)))


def validation_base(dataset: Dataset, base: ForgetRequest, k: int, *, seed: int) -> ForgetRequest:
    """The base of the validation stream used for tuning: random and owner draws differ through the seed alone;
    a class stream forgets k *other* classes (drawn with ``seed``); an ids stream has no counterpart."""
    if base.kind == "ids":
        raise InvalidForgetRequest("an ids:FILE stream has no validation counterpart for tuning; tune on random:F, "
                                   "owners:K or classes:... instead")
    if base.kind != "class":
        return base
    used = {dataset.class_index(c) for c in base.classes[:k]}
    others = [c for c in range(dataset.num_classes) if c not in used]
    if len(others) <= k:
        raise InvalidForgetRequest(f"{dataset.name} has no {k} other classes (keeping at least one) for a validation "
                                   "stream")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC1A]))
    return ForgetRequest("class", classes=tuple(str(int(c)) for c in rng.choice(others, size=k, replace=False)))


def build_requests(dataset: Dataset, params: SequentialParams, *, seed: int,
                   validation: bool = False) -> tuple[list[Splits], list[Splits]]:
    """(per-step splits the method sees, cumulative splits each step is evaluated on), all validated."""
    base = params.request()
    if validation:
        base = validation_base(dataset, base, params.k, seed=seed)
    train = dataset.train
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5E9]))
    forgotten = np.empty(0, dtype=np.int64)
    step_classes: tuple[int, ...] = ()
    method_splits, eval_splits = [], []
    for i in range(params.k):
        available = np.setdiff1d(train.ids, forgotten)
        ids, classes = _step_ids(base, dataset, available, i, params.k, rng)
        if np.intersect1d(ids, forgotten).size:
            raise InvalidForgetRequest(f"request {i + 1} of {params.k} repeats examples forgotten earlier")
        cumulative = np.union1d(forgotten, ids)
        step_classes += classes
        method_splits.append(Splits.from_ids(dataset, ids, request=_request(base, 1, ids, first=i),
                                             forget_classes=classes, seed=seed,
                                             retain_ids=np.setdiff1d(train.ids, cumulative)))
        eval_splits.append(Splits.from_ids(dataset, cumulative, request=_request(base, i + 1, cumulative),
                                           forget_classes=step_classes, seed=seed))
        forgotten = cumulative
    return method_splits, eval_splits


@register_scenario
class Sequential(Scenario[SequentialParams]):
    """k requests one after another on the same model; step i is judged against a retrain without F_1..F_i."""

    name = "sequential"
    Params = SequentialParams
    preset_fallback = "random"  # small scattered requests, tuned like a random sample
    tasks = frozenset({"classification", "regression"})  # its base request kind decides (class bases: classification)

    def prepare(self, dataset: str | Dataset, model: str, *, seed: int = 0, store: ArtifactStore | None = None,
                data_dir: str | None = None, recipe: TrainRecipe | None = None, metrics: Iterable[str] | None = None,
                tier: int = 0, progress: bool = True, validation: bool = False) -> Setting:
        ds = dataset_for(dataset, self.params.request().kind, data_dir=data_dir)
        self.check_task(ds.task)
        method_splits, eval_splits = build_requests(ds, self.params, seed=request_seed(seed, validation),
                                                    validation=validation)
        steps = [prepare_splits(ds, model, s, seed=seed, store=store, recipe=recipe, metrics=metrics, tier=tier,
                                progress=progress) for s in eval_splits]
        return Setting(self, steps, seed, validation, method_splits=method_splits)

    def run(self, setting: Setting, method: str, params: Hyperparams | Mapping[str, Any] | None = None, *,
            metrics: Iterable[str] | None = None, tier: int = 0, progress: bool = False, save: bool = True,
            label: str = "", params_source: str | None = None) -> list[RunRecord]:
        records: list[RunRecord] = []
        model, input_key = None, setting.steps[0].original.key  # step 1 starts from the Original
        for i, (prep, splits) in enumerate(zip(setting.steps, setting.method_splits, strict=True), start=1):
            key_extra = {"scenario": self.name, "step": i, "input": input_key, "step_forget": splits.fingerprint()}
            record, model = run_step(prep, method, params, model=model, splits=splits, key_extra=key_extra,
                                     metrics=metrics, tier=tier, progress=progress, save=save, label=label,
                                     params_source=params_source)
            record = record.with_extra(step=i, k=len(setting.steps), step_request=splits.describe())
            records.append(self.tag(record, setting))
            input_key = record.unlearned_key or f"{input_key}>step{i}"
        return records
