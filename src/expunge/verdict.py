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

**Per-example criteria** (:attr:`expunge.tasks.Task.per_example_criteria`, judged on the request kinds
``per_example_kinds``: random samples and owners). Removing a random 10% leaves forget accuracy, test accuracy and the
population MIA of the Original within tolerance of the Retrain, so those criteria have no power there and a method
that leaks individual examples passes them. Tier-2 per-example measures can tell (Hayes et al., arXiv 2403.01218):

* ``ulira_auc`` (U-LiRA) is judged like a population criterion: the Retrain row is an exact unlearner's value, met
  when |unlearned − retrain| ≤ tol, no power when the Original is itself within tol (or within noise: ``power``).
* ``klom_p95_forget`` (KLoM, Georgiev et al., arXiv 2410.23232) is a distance from the unlearned models' margins to
  the oracles', and its Retrain row is the Retrain-vs-Retrain value (N independently seeded retrains against the N
  oracles: the noise floor at this N, not 0 — the binned KL is biased upwards at small N). It is **one-sided**: a
  value at or below the noise floor is as close as an exact unlearner gets, so met when unlearned − retrain ≤ tol,
  missed when above; no power when the Original (doing nothing) is itself within tol of the floor.

A per-example criterion the record does not carry (the run was evaluated at tier 0) has status **"not measured"**:
it is listed, never met, and does not block the verdict of the population criteria — a record whose population
criteria all lack power stays "no power" (nothing can be said), one with a miss stays missed, and one at parity on
the population criteria is at parity with the label "parity (per-example not measured)", so a table says that the
claim rests on population measures alone. Measured, a per-example criterion counts like any other: on a random
request it is usually the only one with power, and it decides.
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

Status = Literal["met", "missed", "no power", "unknown", "not measured"]
NOT_MEASURED = " (per-example not measured)"  # appended to the "parity" label


@dataclass(frozen=True)
class Criterion:
    metric: str
    tolerance: float
    gap: float | None             # |unlearned − retrain| (one-sided: unlearned − retrain)
    original_gap: float | None    # |original − retrain| (one-sided: original − retrain): how far doing nothing is
    status: Status
    per_example: bool = False     # a tier-2 per-example criterion (U-LiRA, KLoM)


@dataclass(frozen=True)
class Verdict:
    at_parity: bool
    label: str                    # "parity", "no power", "unknown" or "miss: forget_acc +0.31"
    criteria: tuple[Criterion, ...]


def per_example_applies(record: RunRecord) -> bool:
    """Whether ``record``'s request is of a kind its task judges per example (random samples, owners)."""
    kind = record.request.get("kind") or str(record.forget).split(":", 1)[0]
    return kind in get_task(record.task).per_example_kinds


def judge(record: RunRecord, criteria: Mapping[str, float] | None = None,
          per_example: Mapping[str, float] | None = None) -> Verdict:
    """The parity verdict of ``record`` against ``criteria`` (default: its task's) and the ``per_example``
    criteria (default: its task's per-example criteria when ``criteria`` is its task's and the request is of a
    per-example kind; none when ``criteria`` is given)."""
    task = get_task(record.task)
    if per_example is None:
        per_example = task.per_example_criteria if criteria is None and per_example_applies(record) else {}
    criteria = dict(task.parity_criteria if criteria is None else criteria)
    judged = [_criterion(record, metric, tol, one_sided=metric in task.one_sided_criteria)
              for metric, tol in criteria.items()]
    judged += [_criterion(record, metric, tol, one_sided=metric in task.one_sided_criteria, per_example=True)
               for metric, tol in per_example.items() if metric not in criteria]
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
    note = NOT_MEASURED if any(c.status == "not measured" for c in judged) else ""
    return Verdict(True, "parity" + note, tuple(judged))


def _criterion(record: RunRecord, metric: str, tol: float, *, one_sided: bool = False,
               per_example: bool = False) -> Criterion:
    u, o, r = record.metrics.get(metric), record.original.get(metric), record.retrain.get(metric)
    if u is None or r is None:  # a per-example measure the run did not compute is "not measured", not unknown
        absent = per_example and metric not in record.metrics
        return Criterion(metric, tol, None, None, "not measured" if absent else "unknown", per_example)
    if one_sided:  # a distance to the oracles: at or below the Retrain's own (the noise floor) is as good as exact
        gap, o_gap = u - r, None if o is None else o - r
    else:
        gap, o_gap = abs(u - r), None if o is None else abs(o - r)
    if gap > tol + SLACK:  # a miss is a miss, power or not (a method that wrecks test accuracy misses)
        status: Status = "missed"
    elif (o_gap is not None and o_gap <= tol + SLACK) or record.power.get(metric) == "no power":
        status = "no power"  # within tolerance, but doing nothing would be too: no credit
    elif o is None and one_sided:
        status = "unknown"  # a one-sided criterion's power needs the Original's value
    else:
        status = "met"
    return Criterion(metric, tol, gap, o_gap, status, per_example)


def _signed(record: RunRecord, metric: str) -> str:
    diff = float(record.metrics[metric]) - float(record.retrain[metric])  # type: ignore[arg-type]
    return f"{diff:+.3f}"
