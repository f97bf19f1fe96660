"""Mean ± confidence interval of every metric over seeds (not a metric family: nothing here is registered).

:func:`aggregate_records` takes several run records of the *same* method, hyperparameters, dataset, model and forget
request (spec, e.g. ``random:0.1`` — for random requests each seed draws its own forget set) at *different* seeds and
returns, per metric, ``{"mean", "low", "high", "n", "method"}`` from
:func:`expunge.metrics.functional.stats.mean_ci` (Student-t by default, or BCa bootstrap). Values that are None in a
record (metric undefined for that seed) are left out and counted in ``n_missing``.

:func:`aggregate_groups` does this for a mixed pile of records (``expunge aggregate FILE...``): it groups them by
method, hyperparameters, dataset, model, forget request, scenario and sequential step, and aggregates each group's
four sections (unlearned, Original, Retrain, gaps) plus the unlearning time and its ratio to retraining.

:func:`format_interval` and :func:`format_mean_ci` write "mean ± half-width" cells for tables and the CLI.
:func:`gap_closed` is the share of the Original→Retrain gap one record's unlearned model closes on one metric.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from expunge.errors import DegenerateInputWarning, InvalidRunRecord
from expunge.metrics.functional.stats import mean_ci

SAME_FIELDS = ("method", "params", "dataset", "model", "forget")
SECTIONS = ("metrics", "original", "retrain", "gap_to_retrain")


def aggregate_records(records: Sequence[Mapping[str, Any]], *, section: str = "metrics", confidence: float = 0.95,
                      method: Literal["t", "bootstrap"] = "t") -> dict[str, dict[str, Any]]:
    """Per-metric mean and ``confidence`` interval over ``records`` (one per seed).

    Args:
        records: Run records from ``RunRecord.to_json()`` (what ``expunge unlearn --json`` prints).
        section: Which values to aggregate: ``"metrics"`` (the unlearned model, default), ``"original"``,
            ``"retrain"`` or ``"gap_to_retrain"``.
        confidence: Confidence level of the interval.
        method: ``"t"`` (Student-t) or ``"bootstrap"`` (BCa, seeded with 0).

    Returns:
        ``{metric: {"mean", "low", "high", "n", "method", "n_missing", "reason"}}`` for every metric present in any
        record; mean/low/high None when no record has a value; with one value (or no spread) the interval collapses to
        the mean and ``reason`` says so.

    Raises:
        ValueError: No records, records that differ in method/params/dataset/model/forget, repeated seeds, or an
            unknown section.
    """
    if section not in SECTIONS:
        raise ValueError(f"section must be one of {SECTIONS}, got {section!r}")
    if not records:
        raise ValueError("aggregate_records needs at least one record")
    first = records[0]
    for rec in records[1:]:
        diff = [f for f in SAME_FIELDS if rec.get(f) != first.get(f)]
        if diff:
            raise ValueError(f"records differ in {', '.join(diff)}; aggregate one method and request at a time")
    seeds = [rec.get("seed") for rec in records]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"repeated seeds {seeds}: each record must come from a different seed")
    names: list[str] = []
    for rec in records:
        names += [n for n in rec.get(section, {}) if n not in names]
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        values = [rec.get(section, {}).get(name) for rec in records]
        present = [float(v) for v in values if v is not None]
        ci = _mean_ci_quietly(present, confidence=confidence, method=method)  # degenerate cases: in "reason"
        out[name] = {"mean": ci["mean"], "low": ci["low"], "high": ci["high"], "n": ci["n"], "method": ci["method"],
                     "n_missing": len(values) - len(present), "reason": ci["reason"]}
    return out


GROUP_FIELDS = ("method", "params", "dataset", "model", "forget", "scenario", "step")
TIMES = ("time_s", "retrain_time_s", "time_ratio_to_retrain")


def aggregate_groups(records: Sequence[Mapping[str, Any]], *, confidence: float = 0.95,
                     method: Literal["t", "bootstrap"] = "t") -> list[dict[str, Any]]:
    """Group ``records`` (one per seed) by :data:`GROUP_FIELDS` and aggregate each group over its seeds.

    Returns one dict per group, in first-seen order: the group fields, ``seeds`` (sorted), ``n_seeds``, one entry per
    section of :data:`SECTIONS` (``{metric: interval}`` as :func:`aggregate_records`) and ``times`` (the same for
    ``time_s``, ``retrain_time_s`` and ``time_ratio_to_retrain``). Error records (a failed run's ``{"error": ...}``)
    are skipped.

    Raises:
        InvalidRunRecord: An element that is not a run record, or a record lacking a field or with one of the wrong
            type (see :func:`check_records`).
        ValueError: No aggregatable record, or a group with a repeated seed (the same run twice).
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for rec in check_records(records):
        key = json.dumps([rec.get(f) for f in GROUP_FIELDS], sort_keys=True, default=str)
        groups.setdefault(key, []).append(rec)
    if not groups:
        raise ValueError("no run records to aggregate (a record is a JSON object with a 'metrics' section, as "
                         "printed by `expunge unlearn --json`)")
    out = []
    for recs in groups.values():
        first = recs[0]
        entry: dict[str, Any] = {f: first.get(f) for f in GROUP_FIELDS if first.get(f) is not None}
        entry["seeds"] = sorted(r.get("seed") for r in recs)
        entry["n_seeds"] = len(recs)
        for section in SECTIONS:
            entry[section] = aggregate_records(recs, section=section, confidence=confidence, method=method)
        timed = [{**r, "metrics": {t: r.get(t) for t in TIMES}} for r in recs]
        entry["times"] = aggregate_records(timed, confidence=confidence, method=method)
        out.append(entry)
    return out


_FIX = "Fix: pass the JSON that `expunge unlearn --json` or `expunge scenario --json` prints"
_REQUIRED: dict[str, tuple[type, ...]] = {"method": (str,), "params": (Mapping,), "dataset": (str,), "model": (str,),
                                         "forget": (str,), "seed": (int,), "metrics": (Mapping,)}
_OPTIONAL: dict[str, tuple[type, ...]] = {"scenario": (str,), "step": (int,), "original": (Mapping,),
                                         "retrain": (Mapping,), "gap_to_retrain": (Mapping,)}


def check_records(doc: Any, source: str = "records") -> list[Mapping[str, Any]]:
    """The run records of ``doc`` — one record (a JSON object) or a list of them — checked field by field, so that a
    malformed file is named up front instead of surfacing as a crash inside the statistics. Error records (an
    ``"error"`` and no ``"metrics"``, as a failed run writes) are left out.

    Checked: ``method``, ``dataset``, ``model`` and ``forget`` are strings, ``params`` and each section present
    (:data:`SECTIONS`) are objects whose values are numbers or null, ``seed`` (and ``step``, when present) an integer,
    and ``time_s``, ``retrain_time_s``, ``time_ratio_to_retrain`` numbers or null.

    Raises:
        InvalidRunRecord: naming ``source``, the record's position and the offending field.
    """
    items = doc if isinstance(doc, list) else [doc] if isinstance(doc, Mapping) else None
    if items is None:
        raise InvalidRunRecord(f"{source}: expected a run record (a JSON object) or a list of them, got "
                               f"{_kind(doc)}. {_FIX}")
    out = []
    for i, rec in enumerate(items):
        where = f"{source}: record {i}" if isinstance(doc, list) else f"{source}: the record"
        if not isinstance(rec, Mapping):
            raise InvalidRunRecord(f"{where} is {_kind(rec)}, not a run record (a JSON object). {_FIX}")
        if "error" in rec and "metrics" not in rec:
            continue
        missing = [f for f in _REQUIRED if f not in rec]
        if missing:
            raise InvalidRunRecord(f"{where} lacks field(s) {', '.join(missing)}. {_FIX}")
        for name, types in (*_REQUIRED.items(), *_OPTIONAL.items()):
            value = rec.get(name)
            if name in rec and (not isinstance(value, types) or isinstance(value, bool)):
                want = "an object" if types == (Mapping,) else "an integer" if types == (int,) else "a string"
                raise InvalidRunRecord(f"{where}: field {name!r} must be {want}, got {_kind(value)}. {_FIX}")
        for section in SECTIONS:
            for metric, value in rec.get(section, {}).items():
                if value is not None and not _is_number(value):
                    raise InvalidRunRecord(f"{where}: {section}[{metric!r}] must be a number or null, got "
                                           f"{_kind(value)}. {_FIX}")
        for name in TIMES:
            if rec.get(name) is not None and not _is_number(rec[name]):
                raise InvalidRunRecord(f"{where}: field {name!r} must be a number or null, got {_kind(rec[name])}. "
                                       f"{_FIX}")
        out.append(rec)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    """A JSON value's kind and a short preview, for error messages."""
    kinds = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "a list", dict: "an object"}
    preview = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return f"{kinds.get(type(value), type(value).__name__)} {preview}"


def format_interval(agg: Mapping[str, Any] | None, digits: int = 3) -> str:
    """"mean ± half-width" (just the mean when the interval collapsed, "—" when there is no value). When some seeds
    lack the value (``n_missing`` > 0) the cell says over how many it was taken — ``0.600 ± 0.248 (n=2/3)``, ``—
    (n=0/3)`` — so a mean over fewer seeds never reads as one over all of them."""
    if not agg:
        return "—"
    missing = int(agg.get("n_missing") or 0)
    n = int(agg.get("n") or 0)
    suffix = f" (n={n}/{n + missing})" if missing else ""
    mean, low, high = agg.get("mean"), agg.get("low"), agg.get("high")
    if mean is None:
        return "—" + suffix
    if low is None or high is None or high == low:
        return f"{mean:.{digits}f}{suffix}"
    return f"{mean:.{digits}f} ± {(high - low) / 2:.{digits}f}{suffix}"


def format_mean_ci(values: Sequence[float | None], digits: int = 3) -> str:
    """``format_interval`` of the 95% t interval of ``values`` (Nones left out and counted: ``0.250 (n=1/2)``): the
    per-seed cell of a results table.

    One value or zero spread shows just the mean (the interval collapsed); no value shows "—". The degenerate-input
    warnings (:class:`~expunge.errors.DegenerateInputWarning`) of :func:`mean_ci` are silenced here because the
    collapsed cell already says it; any other warning still surfaces.
    """
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return "—" if not values else f"— (n=0/{len(values)})"
    agg = _mean_ci_quietly(vals)
    return format_interval({**agg, "n": len(vals), "n_missing": len(values) - len(vals)}, digits)


def _mean_ci_quietly(values: Sequence[float], **kw: Any) -> dict[str, Any]:
    """:func:`mean_ci` without its :class:`DegenerateInputWarning` (the callers report the collapse themselves); any
    other warning still surfaces."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateInputWarning)
        return mean_ci(values, **kw)


def gap_closed(record: Mapping[str, Any], metric: str, *, min_gap: float = 1e-9) -> float | None:
    """Share of the Original→Retrain gap on ``metric`` that the unlearned model closes: (O − U) / (O − R).

    1 = at the Retrain's value, 0 = still at the Original's (did nothing), > 1 = went past the Retrain (e.g.
    over-forgetting), < 0 = moved away from it. None when a value is missing or |O − R| < ``min_gap``: with no gap
    (e.g. random forgetting from an original that does not memorise) the share is undefined, not 0 or 1.
    """
    o, u, r = (record[s].get(metric) for s in ("original", "metrics", "retrain"))
    if o is None or u is None or r is None or abs(o - r) < min_gap:
        return None
    return float((o - u) / (o - r))
