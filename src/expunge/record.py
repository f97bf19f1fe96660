"""The run record: what one unlearning run measured, typed, versioned and JSON-round-trippable.

Every layer that reports a run returns a :class:`RunRecord` — :func:`expunge.unlearn`, the scenarios (one per
request, with their own fields in :attr:`RunRecord.extra`), :func:`expunge.evaluate` — and ``expunge unlearn --json``
prints :meth:`RunRecord.to_json`. The JSON form is flat: the fields below plus the ``extra`` entries at the top level
(``scenario``, ``step``, ``clean`` ...), so a record written by an earlier version reads the same way. Loading a
record of a schema version this code does not know is an error (:class:`RecordSchemaError`), never a guess.

``method`` is the registry name; ``label`` is what a table shows (``"ssd [tuned]"``), so display labels never
overwrite the method. ``params_source`` says where the hyperparameters came from: ``"paper defaults"``,
``"preset DATASET/MODEL/SCENARIO"`` (a shipped or tuned preset) or ``"user"`` (values given explicitly).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self, get_args

from expunge._io import to_json_bytes
from expunge.errors import ExpungeError

SCHEMA_VERSION = 1
PAPER_DEFAULTS = "paper defaults"
Status = Literal["ok", "no change", "diverged", "unknown"]
STATUSES: tuple[str, ...] = get_args(Status)
FAILED_STATUSES = ("no change", "diverged")   # nothing was unlearned: never at parity, exit status 3
# metric section -> the role its reasons are filed under
_SECTION_ROLES = {"metrics": "unlearned", "original": "original", "retrain": "retrain", "gap_to_retrain": "gap"}


class RecordSchemaError(ExpungeError, ValueError):
    """A record's JSON has an unknown schema version or lacks required fields."""


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """One run: the method's model beside the Original and the Retrain, on one request and seed."""

    method: str
    params: Mapping[str, Any]
    task: str
    dataset: str
    dataset_fingerprint: str
    model: str
    forget: str                                   # the request's canonical spec, e.g. "class:3"
    request: Mapping[str, Any]                    # Splits.describe(): sizes, classes, fingerprint, seed
    seed: int
    metrics: Mapping[str, float | None]           # the unlearned model
    original: Mapping[str, float | None]
    retrain: Mapping[str, float | None]
    gap_to_retrain: Mapping[str, float | None]    # |unlearned − retrain| per metric
    power: Mapping[str, str | None] = field(default_factory=dict)  # "ok" / "no power" / None per metric
    reasons: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # metric -> role -> why None/caveat
    label: str = ""                               # display label; defaults to the method
    params_source: str = PAPER_DEFAULTS
    time_s: float | None = None                   # the unlearning call only (precompute excluded)
    retrain_time_s: float | None = None           # the oracle's training time on this machine
    time_ratio_to_retrain: float | None = None
    peak_rss_bytes: int | None = None
    peak_delta_bytes: int | None = None
    access: Mapping[str, Any] = field(default_factory=dict)  # examples served, statistics, precompute_s
    method_access: str = ""
    notes: Mapping[str, Any] = field(default_factory=dict)   # the method's counters
    original_key: str | None = None
    oracle_key: str | None = None
    unlearned_key: str | None = None
    cache: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, Any] = field(default_factory=dict)     # versions, platform, threads
    created_at: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)   # scenario fields, written at the top level of the JSON
    status: Status = "unknown"                    # "ok" / "no change" / "diverged" / "unknown" (module docstring)
    status_reason: str = ""                       # why, when the status is not "ok"
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.method)
        if self.status not in STATUSES:
            raise RecordSchemaError(f"run record status {self.status!r} is not one of {list(STATUSES)}")
        reasons = {k: dict(v) for k, v in self.reasons.items()}
        for section, role in _SECTION_ROLES.items():
            values = getattr(self, section)
            bad = {k: v for k, v in values.items() if isinstance(v, float) and not math.isfinite(v)}
            if bad:
                object.__setattr__(self, section, {k: None if k in bad else v for k, v in values.items()})
                for k, v in bad.items():
                    reasons.setdefault(k, {}).setdefault(role, f"non-finite value ({v}) recorded as no value")
        if reasons != {k: dict(v) for k, v in self.reasons.items()}:
            object.__setattr__(self, "reasons", reasons)

    @property
    def failed(self) -> bool:
        """True when the run unlearned nothing ("no change") or diverged: never at parity, CLI exit status 3."""
        return self.status in FAILED_STATUSES

    @property
    def speed_up(self) -> float | None:
        """Retrain time / unlearning time on this request (×); None when either is unknown."""
        if not self.time_s or self.retrain_time_s is None:
            return None
        return self.retrain_time_s / self.time_s

    def with_extra(self, **values: Any) -> Self:
        """A copy with ``values`` added to :attr:`extra` (scenario tags, evaluation details)."""
        return dataclasses.replace(self, extra={**self.extra, **values})

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The flat JSON form: every field except ``extra``, whose entries are top-level keys, plus ``speed_up``."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        clash = set(self.extra) & set(out)
        if clash:
            raise RecordSchemaError(f"record extra keys {sorted(clash)} collide with record fields")
        out["speed_up"] = self.speed_up
        return finite_json({**out, **dict(self.extra)})

    def dumps(self) -> str:
        return to_json_bytes(self.to_json()).decode()

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RunRecord:
        """Rebuild a record from :meth:`to_json`'s form. Records written before schema versions existed (no
        ``schema_version``) are version 1 with the same keys; version-1 records written before ``status`` existed
        read as status "unknown" (judged on their metrics alone, as when they were written).

        Raises:
            RecordSchemaError: unknown schema version, or a required field is missing."""
        version = doc.get("schema_version", 1)
        if version != SCHEMA_VERSION:
            raise RecordSchemaError(f"run record schema version {version!r} is not supported by this expunge "
                                    f"(reads version {SCHEMA_VERSION}). Fix: read it with the expunge version that "
                                    "wrote it, or re-run the experiment")
        doc = {"task": "classification", **doc}  # records older than tasks were all classification
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        if missing := sorted(required - set(doc)):
            raise RecordSchemaError(f"run record lacks required field(s) {', '.join(missing)}")
        values = {k: v for k, v in doc.items() if k in names}
        extra = {k: v for k, v in doc.items() if k not in names and k != "speed_up"}
        return cls(**values, extra=extra)

    @classmethod
    def loads(cls, text: str) -> RunRecord:
        return cls.from_json(json.loads(text))


def finite_json(obj: Any) -> Any:
    """``obj`` with every non-finite float (nested in dicts, lists, tuples) replaced by None: what the strict
    :func:`expunge._io.to_json_bytes` accepts (records, and method notes in store manifests)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(finite_json(v) for v in obj)
    if isinstance(obj, list):
        return [finite_json(v) for v in obj]
    return obj
