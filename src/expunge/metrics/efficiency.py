"""Efficiency — deliberately *not* registered metrics.

``unlearn_time_s``, ``speedup_vs_retrain`` and ``peak_mem_bytes`` cannot be computed from models: they describe the
unlearning *call*, which an :class:`~expunge.metrics.base.EvalContext` never sees. The runner measures them around the
method alone (evaluation excluded, unlike SSD's ``MethodTime``) and every run record already carries them:

* ``time_s`` — wall time of the unlearning call (cached full-training-set statistics are reported apart);
* ``retrain_time_s`` and ``time_ratio_to_retrain`` = time_s / retrain_time_s;
* ``peak_rss_bytes`` / ``peak_delta_bytes`` — peak resident memory of the process and its increase during the call;
* ``env`` — hardware and library versions.

:func:`efficiency_from_record` maps those fields to ``unlearn_time_s`` / ``speedup_vs_retrain`` / ``peak_mem_bytes``,
with the NeurIPS'23 challenge's gate (Triantafillou et al., arXiv 2406.09073: flag when time(U) > 0.2 · time(R)).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NEURIPS23_TIME_FRACTION = 0.2


def efficiency_from_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """Spec-named efficiency numbers from a run record; None where the record lacks the field.

    Returns:
        ``{"unlearn_time_s", "speedup_vs_retrain", "peak_mem_bytes", "over_neurips23_budget"}`` with speed-up =
        retrain_time_s / time_s and the budget flag True when time_s > 0.2 · retrain_time_s.
    """
    t, r = record.get("time_s"), record.get("retrain_time_s")
    speedup = r / t if t and r is not None and t > 0 else None
    over = None if t is None or r is None else bool(t > NEURIPS23_TIME_FRACTION * r)
    return {"unlearn_time_s": t, "speedup_vs_retrain": speedup, "peak_mem_bytes": record.get("peak_rss_bytes"),
            "over_neurips23_budget": over}
