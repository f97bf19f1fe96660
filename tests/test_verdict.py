"""Parity verdicts: known answers for met, missed, no power (doing nothing passes, or Original and Retrain within
noise) and unknown; a gap equal to the bound is met despite float rounding."""

from __future__ import annotations

import pytest

from expunge.verdict import judge

CRITERIA = {"forget_acc": 0.02, "test_acc": 0.02}


def rec(make_record, unlearned, original, retrain, power=None):
    return make_record(metrics=unlearned, original=original, retrain=retrain, power=power or {})


def test_met_missed_and_the_label(make_record):
    r = rec(make_record, {"forget_acc": 0.01, "test_acc": 0.85}, {"forget_acc": 1.0, "test_acc": 0.95},
            {"forget_acc": 0.0, "test_acc": 0.88})
    v = judge(r, CRITERIA)
    assert not v.at_parity and v.label == "miss: test_acc -0.030"
    assert [c.status for c in v.criteria] == ["met", "missed"]
    ok = judge(r.replace(metrics={"forget_acc": 0.01, "test_acc": 0.87}), CRITERIA)
    assert ok.at_parity and ok.label == "parity"


def test_a_gap_equal_to_the_bound_is_met(make_record):
    # 0.88 - 0.86 is 0.020000000000000018 in floating point
    r = rec(make_record, {"forget_acc": 0.0, "test_acc": 0.86}, {"forget_acc": 1.0, "test_acc": 0.97},
            {"forget_acc": 0.0, "test_acc": 0.88})
    assert judge(r, CRITERIA).at_parity


def test_a_criterion_doing_nothing_passes_has_no_power(make_record):
    r = rec(make_record, {"forget_acc": 0.90, "test_acc": 0.90}, {"forget_acc": 0.91, "test_acc": 0.90},
            {"forget_acc": 0.90, "test_acc": 0.90})
    v = judge(r, CRITERIA)
    assert not v.at_parity and v.label == "no power" and {c.status for c in v.criteria} == {"no power"}


def test_original_within_noise_of_the_retrain_has_no_power(make_record):
    r = rec(make_record, {"forget_acc": 0.21, "test_acc": 0.90}, {"forget_acc": 1.0, "test_acc": 0.95},
            {"forget_acc": 0.2, "test_acc": 0.90}, power={"forget_acc": "no power", "test_acc": "ok"})
    v = judge(r, CRITERIA)  # forget_acc differs by 0.8 but on 5 examples: noise; test_acc decides
    assert [c.status for c in v.criteria] == ["no power", "met"] and v.at_parity


def test_a_miss_on_a_criterion_without_power_is_still_a_miss(make_record):
    """Doing nothing keeps test accuracy, so that criterion has no power, but breaking it is a miss."""
    r = rec(make_record, {"forget_acc": 0.0, "test_acc": 0.70}, {"forget_acc": 1.0, "test_acc": 0.89},
            {"forget_acc": 0.0, "test_acc": 0.88})
    v = judge(r, CRITERIA)
    assert [c.status for c in v.criteria] == ["met", "missed"] and v.label == "miss: test_acc -0.180"


def test_missing_values_are_unknown(make_record):
    r = rec(make_record, {"forget_acc": None, "test_acc": 0.9}, {"forget_acc": 1.0, "test_acc": 0.95},
            {"forget_acc": 0.0, "test_acc": 0.9})
    assert judge(r, CRITERIA).label == "unknown"
    with pytest.raises(KeyError):
        judge(make_record(task="no-such-task"))
