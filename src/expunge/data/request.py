"""Forget requests and the validated splits they resolve into.

A :class:`ForgetRequest` says *what* to forget — whole classes, one fine class of a coarse-label model (sub-class),
a random fraction, explicit example ids, or every example of some owners (the shape of a real deletion request).
:meth:`ForgetRequest.resolve` turns it, for one dataset and seed, into :class:`Splits`: positions of the forget and
retain examples in the training partition, the test positions, and an optional seeded retain subset.

:class:`Splits` validates itself on construction, so every path that builds one (a parsed spec, explicit ids from a
user, a sequential stream) gets the same checks; each failure is a typed
:class:`~expunge.errors.InvalidForgetRequest` that names the offending ids and the fix. Nothing is written before
validation passes.

Textual specs (CLI ``--forget``) are ``KIND:ARG``; each kind is a :class:`RequestKind` plug-in registered by the
module of the scenario it belongs to (``class:3`` / ``classes:3,5`` in :mod:`expunge.scenarios.full_class`,
``subclass:NAME``, ``random:0.1``, ``owners:K`` likewise) and found by :data:`REQUEST_KINDS`; ``ids:FILE`` (one
integer id per line, ``#`` comments allowed) is built in. A new kind is one class in one scenario file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from expunge._io import stable_hash
from expunge._registry import Registry
from expunge.data.datasets import Dataset, LabelSet, load_dataset
from expunge.data.ids_file import check_int64, read_ids_file
from expunge.data.request_checks import request_checks
from expunge.errors import (
    DuplicateIds,
    EmptyForgetSet,
    ForgetIsWholeTrainingSet,
    InvalidForgetRequest,
    MalformedForgetSpec,
    SplitOverlap,
    UnknownIds,
    _preview,
)

REQUEST_KINDS: Registry[RequestKind] = Registry("request kind", package="expunge.scenarios",
                                                  entry_point_group="expunge.scenarios")


def register_request_kind(cls: type[RequestKind]) -> type[RequestKind]:
    """Register a request kind (an instance) under its ``name`` and each of its ``aliases``."""
    kind = cls()
    for name in (cls.name, *cls.aliases):
        REQUEST_KINDS.register(name, kind)
    return cls


def request_syntax() -> str:
    """Every registered kind's syntax, for help texts and errors."""
    kinds = {id(k): k for _, k in REQUEST_KINDS.items()}.values()
    return " | ".join(k.syntax for k in sorted(kinds, key=lambda k: k.name))


class RequestKind(ABC):
    """One kind of forget request: how it is written (``NAME:ARG``), what it says in canonical form, and which
    training examples it selects on a dataset. Defined beside the scenario it belongs to (``class`` in
    :mod:`expunge.scenarios.full_class`, ...); explicit ``ids`` is built in here."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    syntax: ClassVar[str]                # e.g. "random:0.1"
    labels: ClassVar[LabelSet | None] = None  # a label set the dataset must be loaded with (None: any; "fine" to load)
    scenario: ClassVar[str | None]       # the scenario it belongs to (None: built in)
    presets_from: ClassVar[str | None] = None  # the scenario whose presets a one-off request uses (default: its own)
    tasks: ClassVar[frozenset[str]] = frozenset({"classification", "regression", "graph"})

    @abstractmethod
    def parse(self, arg: str, written: str) -> ForgetRequest:
        """The request ``written:arg`` (``written`` is the name or alias used); raises :class:`MalformedForgetSpec`."""

    @abstractmethod
    def spec(self, request: ForgetRequest) -> str:
        """The canonical text form of ``request``."""

    @abstractmethod
    def select(self, request: ForgetRequest, dataset: Dataset, rng: np.random.Generator) \
            -> tuple[np.ndarray, tuple[int, ...]]:
        """The forgotten training ids and, for class requests, the forgotten class indices."""

    def select_detail(self, request: ForgetRequest, dataset: Dataset, rng: np.random.Generator) \
            -> tuple[np.ndarray, tuple[int, ...], dict[str, Any]]:
        """:meth:`select` plus what the request removes beyond whole examples (:attr:`Splits.detail`, e.g. a graph's
        deleted edges). Default: nothing more. A kind that removes parts of examples overrides this one."""
        ids, classes = self.select(request, dataset, rng)
        return ids, classes, {}


class ForgetRequest:
    """What must be forgotten: a kind and its arguments. Immutable, hashable, JSON-describable; :attr:`spec` is the
    canonical text form. Arguments read as attributes (``ForgetRequest("random", fraction=0.1).fraction``)."""

    __slots__ = ("_args", "kind")

    def __init__(self, kind: str, **args: Any) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "_args", tuple(sorted(args.items())))

    def __getattr__(self, name: str) -> Any:
        for k, v in object.__getattribute__(self, "_args"):
            if k == name:
                return v
        raise AttributeError(f"a {self.kind!r} request has no argument {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("ForgetRequest is immutable")

    def __reduce__(self) -> tuple[Any, ...]:  # copy / multiprocessing: rebuild through __init__
        return _rebuild_request, (self.kind, self._args)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ForgetRequest) and (self.kind, self._args) == (other.kind, other._args)

    def __hash__(self) -> int:
        return hash((self.kind, self._args))

    def __repr__(self) -> str:
        return f"ForgetRequest({self.kind!r}, {', '.join(f'{k}={v!r}' for k, v in self._args)})"

    @property
    def args(self) -> dict[str, Any]:
        return dict(self._args)

    @property
    def handler(self) -> RequestKind:
        return REQUEST_KINDS.get(self.kind)

    @property
    def spec(self) -> str:
        return self.handler.spec(self)

    @classmethod
    def parse(cls, text: str) -> ForgetRequest:
        kind, sep, arg = text.partition(":")
        kind, arg = kind.strip().lower(), arg.strip()
        if not sep or not arg:
            raise MalformedForgetSpec(f"cannot parse forget spec {text!r}; expected one of: {request_syntax()}")
        if kind not in REQUEST_KINDS:
            raise MalformedForgetSpec(f"unknown forget kind {kind!r} in {text!r}; expected one of: {request_syntax()}")
        return REQUEST_KINDS.get(kind).parse(arg, kind)

    def resolve(self, dataset: Dataset, *, seed: int = 0, retain_subset: float | None = None) -> Splits:
        """Resolve into validated splits. Random draws (random samples, owners) are seeded by ``seed``."""
        handler = self.handler
        if dataset.task not in handler.tasks:
            raise InvalidForgetRequest(f"{self.kind} requests need a {' or '.join(sorted(handler.tasks))} dataset; "
                                       f"{dataset.name} is a {dataset.task} dataset. Fix: forget random:F, owners:K "
                                       "or ids:FILE")
        if handler.labels is not None and handler.labels != dataset.label_set:
            raise InvalidForgetRequest(
                f"{self.kind} requests need {dataset.name} loaded with {handler.labels} labels, not "
                f"{dataset.label_set}. Fix: load it with labels={handler.labels!r} (the CLI and expunge.prepare do "
                "this for you)")
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xF0E]))
        forget_ids, forget_classes, detail = handler.select_detail(self, dataset, rng)
        splits = Splits.from_ids(dataset, forget_ids, request=self, forget_classes=forget_classes, seed=seed,
                                 retain_subset=retain_subset, detail=detail)
        if self.kind == "ids" and (classes := whole_classes(dataset, splits.forget)):
            # the same examples as class:3 / classes:3,5: the same request (scenario, presets, judgement, records)
            splits = replace(splits, request=ForgetRequest("class", classes=tuple(str(c) for c in classes)),
                             forget_classes=classes)
        return splits


def whole_classes(dataset: Dataset, forget: np.ndarray) -> tuple[int, ...]:
    """The classes whose training examples are exactly the ones at positions ``forget`` (every example of each, no
    other example), or ``()`` when they are not whole classes, the dataset is not a classification dataset, or no
    ``class`` request kind is registered."""
    if dataset.task != "classification" or "class" not in REQUEST_KINDS or forget.size == 0:
        return ()
    labels = dataset.train.y.numpy()
    classes = np.unique(labels[forget])
    if int(np.isin(labels, classes).sum()) != forget.size:  # forget ⊆ those classes, so equal counts mean equal sets
        return ()
    return tuple(int(c) for c in classes)


def _rebuild_request(kind: str, args: tuple[tuple[str, Any], ...]) -> ForgetRequest:
    return ForgetRequest(kind, **dict(args))


@register_request_kind
class IdsKind(RequestKind):
    """Explicit example ids, from a file (``ids:FILE``, one integer id per line) or given in code."""

    name, syntax = "ids", "ids:FILE"
    scenario = None
    # recsys: interaction ids; graph: nodes; llm: rows of a facts corpus
    tasks = frozenset({"classification", "regression", "recsys", "graph", "llm"})
    presets_from = "random"  # explicit ids are tuned like a scattered sample

    def parse(self, arg: str, written: str) -> ForgetRequest:
        return ForgetRequest("ids", ids=read_ids_file(Path(arg)))

    def spec(self, request: ForgetRequest) -> str:
        return f"ids:{len(request.ids)}@{stable_hash(list(request.ids))[:12]}"

    def select(self, request: ForgetRequest, dataset: Dataset, rng: np.random.Generator) \
            -> tuple[np.ndarray, tuple[int, ...]]:
        return ids_request(request.ids).ids, ()  # validated again: a request built in code skipped the parser


def dataset_for(dataset: str | Dataset, kind: str, *, data_dir: str | None = None) -> Dataset:
    """The dataset requests of ``kind`` are resolved on: loaded by name with the label set the kind needs
    (sub-class requests: coarse labels), or as given."""
    if isinstance(dataset, str):
        return load_dataset(dataset, data_dir=data_dir, labels=REQUEST_KINDS.get(kind).labels or "fine")
    return dataset


def ids_request(values: Any) -> ForgetRequest:
    """An ``ids`` request from integer ids given in code (a sequence or an array).

    Raises:
        MalformedForgetSpec: a value is not an integer (``1.5``, ``"a"``) or does not fit an int64 id."""
    ids: list[int] = []
    bad: list[object] = []
    for v in np.asarray(values).reshape(-1).tolist():  # Python scalars; ints beyond int64 stay exact (object arrays)
        if isinstance(v, float) and v.is_integer():
            v = int(v)  # 3.0 is the id 3; 3.5 is refused
        (ids if isinstance(v, int) and not isinstance(v, bool) else bad).append(v)
    if bad:
        raise MalformedForgetSpec(f"forget ids must be integers; got {len(bad)} other value(s): {_preview(bad, 3)}. "
                                  "Fix: pass training-example ids (`expunge.load_dataset(...).train.ids`)")
    check_int64(ids, where="the forget ids")
    return ForgetRequest("ids", ids=tuple(ids))


def _unknown_where(unknown: np.ndarray, dataset: Dataset) -> str:
    """Where ids were looked for, with what explains the misses: the id range, negatives, test ids."""
    ids = dataset.train.ids
    notes = [f"its ids span {ids.min()}..{ids.max()}" if ids.size else "it is empty"]
    if (neg := int((unknown < 0).sum())) and ids.size and ids.min() >= 0:
        notes.append(f"{neg} of the requested ids are negative")
    if (in_test := np.intersect1d(unknown, dataset.test.ids).size):
        notes.append(f"{in_test} of them are test ids")
    return f"training set of {dataset.name} ({'; '.join(notes)})"


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
    checks: dict[str, object] = field(default_factory=dict)  # request_checks(): forget fraction, duplicate content
    # What the request removes beyond whole examples (a graph's deleted edges, expunge.tasks.graph); JSON values.
    # Part of the fingerprint when not empty, so the oracle of "these edges" is never the oracle of other edges.
    detail: dict[str, Any] = field(default_factory=dict)

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
        detail: dict[str, Any] | None = None,
    ) -> Splits:
        """Validate id sets and build splits. ``retain_ids`` defaults to every training id not forgotten;
        ``detail``: what the request removes beyond whole examples (:attr:`detail`)."""
        train, test = dataset.train, dataset.test
        forget_ids = np.asarray(ids_request(forget_ids).ids, dtype=np.int64)
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
            raise UnknownIds(unknown, where=_unknown_where(unknown, dataset))
        if retain_ids is None:
            retain_ids = np.setdiff1d(train.ids, uniq)
        else:
            retain_ids = np.asarray(ids_request(retain_ids).ids, dtype=np.int64)
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
        forget_pos = np.sort(train.positions_of(uniq))
        return cls(
            dataset_fingerprint=dataset.fingerprint,
            forget=forget_pos,
            retain=retain_pos,
            test=np.arange(len(test), dtype=np.int64),
            request=request or ForgetRequest("ids", ids=tuple(int(i) for i in uniq)),
            forget_ids=uniq,
            forget_classes=forget_classes,
            retain_subset=subset,
            seed=seed,
            checks=request_checks(dataset, forget_pos, retain_pos, parts_only=bool(detail)),
            detail=dict(detail or {}),
        )

    def fingerprint(self) -> str:
        """Identity of the forget set (the retrain oracle's cache key): hash of the dataset, sorted forget ids and,
        when present, the :attr:`detail`."""
        ident: dict[str, Any] = {"dataset": self.dataset_fingerprint, "forget": self.forget_ids.tolist()}
        if self.detail:  # only then: the fingerprints (and cached oracles) of every other request stay as they were
            ident["detail"] = self.detail
        return stable_hash(ident)

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
            **self.checks,
        }
