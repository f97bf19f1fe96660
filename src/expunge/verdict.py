"""Retrain parity of one run record: is the unlearned model within tolerance of the Retrain on every criterion that
can tell the Original from the Retrain on this request?

The criteria and tolerances are the task's (:attr:`expunge.tasks.Task.parity_criteria`; classification: |Δ forget
accuracy| ≤ 0.02, |Δ test accuracy| ≤ 0.02, |Δ loss-MIA AUC| ≤ 0.05). A criterion has **no power** on this request — it
cannot tell whether unlearning happened — when the Original itself is within tolerance of the Retrain (doing nothing
would pass it) or when the record's statistical check finds the Original and the Retrain within two standard errors
of each other (``RunRecord.power``: the difference is noise on this many examples). A gap within tolerance on such
a criterion is reported as "no power", never as met; a gap beyond tolerance is missed all the same (a method that
breaks test accuracy misses, even when the Original and the Retrain agree on it). A record is at parity when no
criterion is missed, every criterion with power is met and at least one has power; when none has power the verdict
is "no power", not "parity". One record = one seed: parity over seeds is judged per seed ("2/3 seeds"), never on a
mean.

A run that unlearned nothing — ``RunRecord.status`` "no change" (weights bit-identical to its input) or "diverged"
(non-finite outputs, or every step rolled back by the non-finite guard) — is never at parity, whatever its metrics:
its label is the status ("diverged", "no change"); the criteria are still judged, for information. Records of
status "unknown" (written before statuses existed) are judged on their metrics, as when they were written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from expunge.record import RunRecord
from expunge.tasks import get_task

# Gaps are differences of accuracies like 387/450 − 396/450 whose float value lands a few ulps above the tolerance
# it equals (0.88 − 0.86 = 0.020000000000000018): compare with this slack so a gap equal to the bound counts as met.
SLACK = 1e-9

Status = Literal["met", "missed", "no power", "unknown"]


@dataclass(frozen=True)
class Criterion:
    metric: str
    tolerance: float
    gap: float | None             # |unlearned − retrain|
    original_gap: float | None    # |original − retrain|: how far doing nothing is
    status: Status


@dataclass(frozen=True)
class Verdict:
    at_parity: bool
    label: str                    # "parity", "no power", "unknown" or "miss: forget_acc +0.31"
    criteria: tuple[Criterion, ...]


def judge(record: RunRecord, criteria: Mapping[str, float] | None = None) -> Verdict:
    """The parity verdict of ``record`` against ``criteria`` (default: its task's)."""
    criteria = dict(get_task(record.task).parity_criteria if criteria is None else criteria)
    judged = []
    for metric, tol in criteria.items():
        u, o, r = record.metrics.get(metric), record.original.get(metric), record.retrain.get(metric)
        if u is None or r is None:
            judged.append(Criterion(metric, tol, None, None, "unknown"))
            continue
        gap, o_gap = abs(u - r), None if o is None else abs(o - r)
        if gap > tol + SLACK:  # a miss is a miss, power or not (a method that wrecks test accuracy misses)
            status: Status = "missed"
        elif (o_gap is not None and o_gap <= tol + SLACK) or record.power.get(metric) == "no power":
            status = "no power"  # within tolerance, but doing nothing would be too: no credit
        else:
            status = "met"
        judged.append(Criterion(metric, tol, gap, o_gap, status))
    if record.failed:  # nothing was unlearned: the metrics may still look fine (a no-power request), never parity
        return Verdict(False, record.status, tuple(judged))
    missed = [c for c in judged if c.status == "missed"]
    if missed:
        signed = ", ".join(f"{c.metric} {_signed(record, c.metric)}" for c in missed)
        return Verdict(False, f"miss: {signed}", tuple(judged))
    if any(c.status == "unknown" for c in judged):
        return Verdict(False, "unknown", tuple(judged))
    if not any(c.status == "met" for c in judged):
        return Verdict(False, "no power", tuple(judged))
    return Verdict(True, "parity", tuple(judged))


def _signed(record: RunRecord, metric: str) -> str:
    diff = float(record.metrics[metric]) - float(record.retrain[metric])  # type: ignore[arg-type]
    return f"{diff:+.3f}"
