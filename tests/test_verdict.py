"""Parity verdicts: known answers for met, missed, no power (doing nothing passes, or Original and Retrain within
noise) and unknown; a gap equal to the bound is met despite float rounding."""

from __future__ import annotations

import pytest

from expunge.tasks import get_task
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


# --- per-example criteria (random / owners requests) -----------------------------------------------------------------
# A random-10% request as the zoo measures it: every population criterion lacks power (the Original is within
# tolerance of the Retrain on each), so the per-example criteria decide.
POP_ORIGINAL = {"forget_acc": 0.99, "test_acc": 0.95, "mia_loss_auc": 0.53}
POP_RETRAIN = {"forget_acc": 0.98, "test_acc": 0.95, "mia_loss_auc": 0.50}


def pe_rec(make_record, forget="random:0.1", **per_example):
    """per_example: metric=(unlearned, original, retrain) for ulira_auc / klom_p95_forget."""
    unlearned, original, retrain = dict(POP_RETRAIN), dict(POP_ORIGINAL), dict(POP_RETRAIN)
    for m, (u, o, r) in per_example.items():
        unlearned[m], original[m], retrain[m] = u, o, r
    kind = forget.split(":")[0]
    return make_record(forget=forget, request={"kind": kind}, metrics=unlearned, original=original, retrain=retrain)


def statuses(v):
    return {c.metric: c.status for c in v.criteria}


def test_population_criteria_alone_have_no_power_on_a_random_request(make_record):
    v = judge(pe_rec(make_record))
    assert v.label == "no power" and not v.at_parity
    s = statuses(v)  # the per-example criteria are listed as not measured, never met
    assert s["ulira_auc"] == s["klom_p95_forget"] == "not measured"
    assert {s[m] for m in POP_RETRAIN} == {"no power"}
    assert [c.per_example for c in v.criteria] == [False, False, False, True, True]


def test_ulira_met_missed_and_no_power(make_record):
    met = judge(pe_rec(make_record, ulira_auc=(0.53, 0.70, 0.50)))  # within 0.05 of the Retrain; Original 0.20 away
    assert met.at_parity and met.label == "parity (per-example not measured)"  # KLoM not measured: said so
    assert statuses(met)["ulira_auc"] == "met" and statuses(met)["klom_p95_forget"] == "not measured"
    missed = judge(pe_rec(make_record, ulira_auc=(0.62, 0.70, 0.50)))
    assert not missed.at_parity and missed.label == "miss: ulira_auc +0.120"
    nopower = judge(pe_rec(make_record, ulira_auc=(0.50, 0.53, 0.50)))  # doing nothing passes too
    assert nopower.label == "no power" and statuses(nopower)["ulira_auc"] == "no power"


def test_klom_is_one_sided_against_the_retrain_vs_retrain_floor(make_record):
    tol = get_task("classification").per_example_criteria["klom_p95_forget"]
    floor, nothing = 2.0, 2.0 + 4 * tol
    met = judge(pe_rec(make_record, klom_p95_forget=(floor + tol, nothing, floor), ulira_auc=(0.5, 0.7, 0.5)))
    assert met.at_parity and met.label == "parity" and statuses(met)["klom_p95_forget"] == "met"
    below = judge(pe_rec(make_record, klom_p95_forget=(floor - 10 * tol, nothing, floor)))  # closer than retrains
    assert statuses(below)["klom_p95_forget"] == "met"   # one-sided: below the floor is no miss (|Δ| would be)
    missed = judge(pe_rec(make_record, klom_p95_forget=(floor + 2 * tol, nothing, floor)))
    assert statuses(missed)["klom_p95_forget"] == "missed" and missed.label.startswith("miss: klom_p95_forget +")
    nopower = judge(pe_rec(make_record, klom_p95_forget=(floor, floor + tol / 2, floor)))
    assert statuses(nopower)["klom_p95_forget"] == "no power" and nopower.label == "no power"
    no_original = judge(pe_rec(make_record, klom_p95_forget=(floor, None, floor)))  # power unknown: not met
    assert statuses(no_original)["klom_p95_forget"] == "unknown" and no_original.label == "unknown"


def test_per_example_criteria_only_on_random_and_owner_requests(make_record):
    owners = judge(pe_rec(make_record, forget="owners:5", ulira_auc=(0.5, 0.7, 0.5)))
    assert owners.at_parity and "ulira_auc" in statuses(owners)
    full_class = judge(make_record(forget="class:3", request={"kind": "class"}, metrics={"forget_acc": 0.0},
                                   original={"forget_acc": 1.0}, retrain={"forget_acc": 0.0}))
    assert "ulira_auc" not in statuses(full_class) and "klom_p95_forget" not in statuses(full_class)
    # explicit criteria replace the task's, per-example ones included (unless given too)
    r = pe_rec(make_record, ulira_auc=(0.62, 0.70, 0.50))
    assert judge(r, {"forget_acc": 0.02}).label == "no power"
    assert judge(r, {"forget_acc": 0.02}, {"ulira_auc": 0.15}).label == "parity"


def test_a_per_example_value_computed_as_none_is_unknown_not_unmeasured(make_record):
    v = judge(pe_rec(make_record, ulira_auc=(None, 0.7, 0.5)))  # the metric ran and could not give a value
    assert statuses(v)["ulira_auc"] == "unknown" and v.label == "unknown"
