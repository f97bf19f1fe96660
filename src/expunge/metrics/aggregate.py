"""Mean ± confidence interval of every metric over seeds (not a metric family: nothing here is registered).

:func:`aggregate_records` takes several run records of the *same* method, hyperparameters, dataset, model and forget
request (spec, e.g. ``random:0.1`` — for random requests each seed draws its own forget set) at *different* seeds and
returns, per metric, ``{"mean", "low", "high", "n", "method"}`` from
:func:`expunge.metrics.functional.stats.mean_ci` (Student-t by default, or BCa bootstrap). Values that are None in a
record (metric undefined for that seed) are left out and counted in ``n_missing``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from expunge.metrics.functional.stats import mean_ci

SAME_FIELDS = ("method", "params", "dataset", "model", "forget")
SECTIONS = ("metrics", "original", "retrain", "gap_to_retrain")


def aggregate_records(records: Sequence[Mapping[str, Any]], *, section: str = "metrics", confidence: float = 0.95,
                      method: Literal["t", "bootstrap"] = "t") -> dict[str, dict[str, Any]]:
    """Per-metric mean and ``confidence`` interval over ``records`` (one per seed).

    Args:
        records: Run records from :func:`expunge.experiment.run_one` (or ``expunge unlearn --json``).
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
        with warnings.catch_warnings():  # the degenerate cases are reported in "reason" instead
            warnings.simplefilter("ignore")
            ci = mean_ci(present, confidence=confidence, method=method)
        out[name] = {"mean": ci["mean"], "low": ci["low"], "high": ci["high"], "n": ci["n"], "method": ci["method"],
                     "n_missing": len(values) - len(present), "reason": ci["reason"]}
    return out
