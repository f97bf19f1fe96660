"""Anamnesis Index and relearning recovery (spec/metrics.md 5.1–5.3)."""

from __future__ import annotations

import pytest

from expunge.errors import DegenerateInputWarning
from expunge.metrics.functional.relearn import anamnesis_index, relearn_recovery


def test_ain_known_answer() -> None:
    res = anamnesis_index(30, 60)
    assert res["ain"] == pytest.approx(0.5) and res["bound"] is None and "reason" not in res


def test_ain_caps() -> None:
    with pytest.warns(DegenerateInputWarning):
        both = anamnesis_index(1000, 1000, capped_u=True, capped_r=True)
    assert both["ain"] is None and "cap" in both["reason"]
    assert anamnesis_index(1000, 50, capped_u=True)["bound"] == "lower"
    assert anamnesis_index(10, 1000, capped_r=True) == pytest.approx(
        {"ain": 0.01, "bound": "upper", "rt_unlearned": 10.0, "rt_retrain": 1000.0, "capped_u": False,
         "capped_r": True})


def test_ain_degenerate_and_bad() -> None:
    with pytest.warns(DegenerateInputWarning):
        assert anamnesis_index(5, 0)["ain"] is None
    with pytest.raises(ValueError):
        anamnesis_index(-1, 5)
    with pytest.raises(ValueError):
        anamnesis_index(float("inf"), 5)


def test_recovery_known_answer() -> None:
    assert relearn_recovery(0.9, 0.1, 0.5)["recovery"] == pytest.approx(0.5)
    assert relearn_recovery(0.9, 0.1, 0.1)["recovery"] == pytest.approx(0.0)
    assert relearn_recovery(0.9, 0.1, 0.9)["recovery"] == pytest.approx(1.0)
    assert relearn_recovery(0.9, 0.1, 0.05)["recovery"] < 0  # not clipped


def test_recovery_nothing_forgotten() -> None:
    with pytest.warns(DegenerateInputWarning):
        res = relearn_recovery(0.7, 0.7, 0.8)
    assert res["recovery"] is None and "nothing was forgotten" in res["reason"]
    with pytest.raises(ValueError):
        relearn_recovery(float("nan"), 0.1, 0.5)
