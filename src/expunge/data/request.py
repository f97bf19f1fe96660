"""Forget requests and the validated splits they resolve into.

A :class:`ForgetRequest` says *what* to forget — whole classes, one fine class of a coarse-label model (sub-class),
a random fraction, explicit example ids, or every example of some owners (the shape of a real deletion request).
:meth:`ForgetRequest.resolve` turns it, for one dataset and seed, into :class:`Splits`: positions of the forget and
retain examples in the training partition, the test positions, and an optional seeded retain subset.

:class:`Splits` validates itself on construction, so every path that builds one (a parsed spec, explicit ids from a
user, a sequential stream) gets the same checks; each failure is a typed
:class:`~expunge.errors.InvalidForgetRequest` that names the offending ids and the fix. Nothing is written before
validation passes.

Textual specs (CLI ``--forget``): ``class:3``, ``class:Sandal``, ``classes:3,5``, ``subclass:Sandal``,
``random:0.1``, ``ids:FILE`` (one integer id per line, ``#`` comments allowed), ``owners:K``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from expunge._io import stable_hash
from expunge.data.datasets import Dataset
from expunge.errors import (
    DuplicateIds,
    EmptyForgetSet,
    ForgetIsWholeTrainingSet,
    InvalidForgetRequest,
    MalformedForgetSpec,
    SplitOverlap,
    UnknownIds,
)

RequestKind = Literal["class", "subclass", "random", "ids", "owners"]
SPEC_HELP = "class:3 | class:NAME | classes:3,5 | subclass:NAME | random:0.1 | ids:FILE | owners:K"


@dataclass(frozen=True)
class ForgetRequest:
    """What must be forgotten. Immutable and JSON-describable; ``spec`` is the canonical text form."""

    kind: RequestKind
    classes: tuple[str, ...] = ()
    fraction: float | None = None
    ids: tuple[int, ...] = ()
    n_owners: int | None = None

    @property
    def spec(self) -> str:
        if self.kind == "class":
            return f"class:{self.classes[0]}" if len(self.classes) == 1 else f"classes:{','.join(self.classes)}"
        if self.kind == "subclass":
            return f"subclass:{self.classes[0]}"
        if self.kind == "random":
            return f"random:{self.fraction:g}"
        if self.kind == "owners":
            return f"owners:{self.n_owners}"
        return f"ids:{len(self.ids)}@{stable_hash(list(self.ids))[:12]}"

    @classmethod
    def parse(cls, text: str) -> ForgetRequest:
        kind, sep, arg = text.partition(":")
        kind, arg = kind.strip().lower(), arg.strip()
        if not sep or not arg:
            raise MalformedForgetSpec(f"cannot parse forget spec {text!r}; expected one of: {SPEC_HELP}")
        if kind in ("class", "classes"):
            names = tuple(a.strip() for a in arg.split(",") if a.strip())
            return cls("class", classes=names)
        if kind == "subclass":
            return cls("subclass", classes=(arg,))
        if kind == "random":
            try:
                frac = float(arg)
            except ValueError:
                raise MalformedForgetSpec(f"random:{arg}: the fraction must be a number in (0, 1)") from None
            if not 0.0 < frac < 1.0:
                raise MalformedForgetSpec(f"random:{arg}: the fraction must be in (0, 1), e.g. random:0.1")
            return cls("random", fraction=frac)
        if kind == "owners":
            if not arg.isdigit() or int(arg) < 1:
                raise MalformedForgetSpec(f"owners:{arg}: give a positive number of owners, e.g. owners:5")
            return cls("owners", n_owners=int(arg))
        if kind == "ids":
            return cls("ids", ids=read_ids_file(Path(arg)))
        raise MalformedForgetSpec(f"unknown forget kind {kind!r} in {text!r}; expected one of: {SPEC_HELP}")

    def resolve(self, dataset: Dataset, *, seed: int = 0, retain_subset: float | None = None) -> Splits:
        """Resolve into validated splits. Random and owner requests are seeded by ``seed``."""
        train = dataset.train
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xF0E]))
        forget_classes: tuple[int, ...] = ()
        if self.kind == "class":
            forget_classes = tuple(sorted({dataset.class_index(c) for c in self.classes}))
            forget_ids = train.ids[np.isin(train.y.numpy(), forget_classes)]
        elif self.kind == "subclass":
            if dataset.label_set != "coarse":
                raise InvalidForgetRequest(
                    f"subclass requests forget one fine class of a coarse-label model, but {dataset.name} was "
                    "loaded with fine labels. Fix: load it with labels='coarse' (the CLI does this for subclass:)."
                )
            fine = dataset.class_index(self.classes[0], fine=True)
            forget_ids = train.ids[train.fine == fine]
        elif self.kind == "random":
            n = round(float(self.fraction or 0.0) * len(train))
            forget_ids = rng.choice(train.ids, size=n, replace=False)
        elif self.kind == "owners":
            if train.owners is None:
                raise InvalidForgetRequest(f"{dataset.name} has no owner ids; owners: requests need them")
            owners = np.unique(train.owners)
            if self.n_owners is None or self.n_owners >= len(owners):
                raise ForgetIsWholeTrainingSet(
                    f"owners:{self.n_owners} asks for all {len(owners)} owners of {dataset.name}; nothing would "
                    "remain. Fix: ask for fewer owners."
                )
            chosen = rng.choice(owners, size=self.n_owners, replace=False)
            forget_ids = train.ids[np.isin(train.owners, chosen)]
        else:
            forget_ids = np.asarray(self.ids, dtype=np.int64)
        return Splits.from_ids(dataset, forget_ids, request=self, forget_classes=forget_classes, seed=seed,
                               retain_subset=retain_subset)


def read_ids_file(path: Path) -> tuple[int, ...]:
    if not path.is_file():
        raise MalformedForgetSpec(f"ids file {path} does not exist. Fix: one integer example id per line.")
    out: list[int] = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            out.append(int(text))
        except ValueError:
            raise MalformedForgetSpec(f"{path}:{lineno}: {text!r} is not an integer example id") from None
    return tuple(out)


@dataclass(frozen=True, eq=False)
class Splits:
    """Validated index sets. ``forget``/``retain``/``retain_subset`` are positions in ``dataset.train``, ``test`` in
    ``dataset.test``; all sorted int64."""

    dataset_fingerprint: str
    forget: np.ndarray
    retain: np.ndarray
    test: np.ndarray
    request: ForgetRequest
    forget_ids: np.ndarray
    forget_classes: tuple[int, ...] = ()
    retain_subset: np.ndarray | None = None
    seed: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    @classmethod
    def from_ids(
        cls,
        dataset: Dataset,
        forget_ids: np.ndarray,
        *,
        request: ForgetRequest | None = None,
        retain_ids: np.ndarray | None = None,
        forget_classes: tuple[int, ...] = (),
        seed: int = 0,
        retain_subset: float | None = None,
    ) -> Splits:
        """Validate id sets and build splits. ``retain_ids`` defaults to every training id not forgotten."""
        train, test = dataset.train, dataset.test
        forget_ids = np.asarray(forget_ids, dtype=np.int64)
        if forget_ids.size == 0:
            raise EmptyForgetSet(
                f"the forget request {request.spec if request else ''} selects no training example of "
                f"{dataset.name}. Fix: check the class/ids; an empty request has nothing to unlearn."
            )
        uniq, counts = np.unique(forget_ids, return_counts=True)
        if (counts > 1).any():
            raise DuplicateIds(uniq[counts > 1])
        unknown = train.unknown_ids(uniq)
        if unknown.size:
            in_test = np.intersect1d(unknown, test.ids)
            raise UnknownIds(unknown, where="training set" + (f" ({in_test.size} of them are test ids)" if in_test.size
                                                                else ""))
        if retain_ids is None:
            retain_ids = np.setdiff1d(train.ids, uniq)
        else:
            retain_ids = np.asarray(retain_ids, dtype=np.int64)
            r_uniq, r_counts = np.unique(retain_ids, return_counts=True)
            if (r_counts > 1).any():
                raise DuplicateIds(r_uniq[r_counts > 1])
            if (unknown := train.unknown_ids(r_uniq)).size:
                raise UnknownIds(unknown, where="training set (retain ids)")
            retain_ids = r_uniq
        overlap = np.intersect1d(uniq, retain_ids)
        if overlap.size:
            raise SplitOverlap("forget", "retain", overlap, "an example is either forgotten or retained; drop these "
                               "ids from one of the two lists")
        if retain_ids.size == 0:
            raise ForgetIsWholeTrainingSet(
                f"the request forgets all {len(train)} training examples of {dataset.name}; nothing remains to "
                "retain and no model can be retrained. Fix: forget a strict subset."
            )
        leak = np.intersect1d(train.ids, test.ids)
        if leak.size:
            raise SplitOverlap("test", "train", leak, "the test set must hold examples never trained on; rebuild the "
                               "dataset with disjoint ids")
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5B5]))
        retain_pos = np.sort(train.positions_of(retain_ids))
        subset = None
        if retain_subset is not None:
            if not 0.0 < retain_subset <= 1.0:
                raise InvalidForgetRequest(f"retain_subset must be a fraction in (0, 1], got {retain_subset}")
            k = max(1, round(retain_subset * retain_pos.size))
            subset = np.sort(rng.choice(retain_pos, size=k, replace=False))
        return cls(
            dataset_fingerprint=dataset.fingerprint,
            forget=np.sort(train.positions_of(uniq)),
            retain=retain_pos,
            test=np.arange(len(test), dtype=np.int64),
            request=request or ForgetRequest("ids", ids=tuple(int(i) for i in uniq)),
            forget_ids=uniq,
            forget_classes=forget_classes,
            retain_subset=subset,
            seed=seed,
        )

    def fingerprint(self) -> str:
        """Identity of the forget set (the retrain oracle's cache key): hash of the dataset and sorted forget ids."""
        return stable_hash({"dataset": self.dataset_fingerprint, "forget": self.forget_ids.tolist()})

    def describe(self) -> dict[str, object]:
        return {
            "spec": self.request.spec,
            "kind": self.request.kind,
            "n_forget": int(self.forget.size),
            "n_retain": int(self.retain.size),
            "n_test": int(self.test.size),
            "forget_classes": list(self.forget_classes),
            "fingerprint": self.fingerprint(),
            "seed": self.seed,
        }
