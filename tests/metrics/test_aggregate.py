"""aggregate_records (mean and 95 % CI over seeds) and efficiency_from_record."""

from __future__ import annotations

import pytest
from scipy import stats

from expunge.metrics.aggregate import aggregate_records, format_mean_ci, gap_closed
from expunge.metrics.efficiency import efficiency_from_record


def rec(seed: int, **metrics: float | None) -> dict:
    return {"method": "ssd", "params": {"alpha": 10.0}, "dataset": "digits", "model": "mlp", "forget": "random:0.1",
            "seed": seed, "metrics": metrics, "retrain": {"forget_acc": 0.9}}


def test_mean_and_t_interval():
    out = aggregate_records([rec(0, forget_acc=0.90), rec(1, forget_acc=0.94), rec(2, forget_acc=0.98)])
    a = out["forget_acc"]
    half = stats.t.ppf(0.975, 2) * stats.sem([0.90, 0.94, 0.98])
    assert a["mean"] == pytest.approx(0.94) and a["n"] == 3 and a["method"] == "t"
    assert a["low"] == pytest.approx(0.94 - half) and a["high"] == pytest.approx(0.94 + half)


def test_missing_values_and_single_seed():
    out = aggregate_records([rec(0, forget_acc=0.9, zrf=None), rec(1, forget_acc=0.9, zrf=0.5)])
    assert out["zrf"] == {"mean": 0.5, "low": 0.5, "high": 0.5, "n": 1, "method": "t", "n_missing": 1,
                          "reason": "n = 1"}
    assert out["forget_acc"]["reason"] == "zero variance"
    assert aggregate_records([rec(0, zrf=None)])["zrf"]["mean"] is None
    assert aggregate_records([rec(0), rec(1)], section="retrain")["forget_acc"]["mean"] == 0.9


def test_refuses_mixed_records():
    with pytest.raises(ValueError, match="method"):
        aggregate_records([rec(0, a=1.0), {**rec(1, a=1.0), "method": "scrub"}])
    with pytest.raises(ValueError, match="repeated seeds"):
        aggregate_records([rec(0, a=1.0), rec(0, a=2.0)])
    with pytest.raises(ValueError):
        aggregate_records([])


def test_efficiency_from_record():
    e = efficiency_from_record({"time_s": 2.0, "retrain_time_s": 20.0, "peak_rss_bytes": 123})
    assert e == {"unlearn_time_s": 2.0, "speedup_vs_retrain": 10.0, "peak_mem_bytes": 123,
                 "over_neurips23_budget": False}
    assert efficiency_from_record({"time_s": 5.0, "retrain_time_s": 20.0})["over_neurips23_budget"] is True
    assert efficiency_from_record({})["speedup_vs_retrain"] is None


def test_format_mean_ci_known_answers():
    # two seeds 0 and 1: mean 0.5, s/√n = 0.5, t_{0.975, 1} = 12.706 -> half-width 6.353
    assert format_mean_ci([0.0, 1.0]) == "0.500 ± 6.353"
    assert format_mean_ci([0.25, None], digits=2) == "0.25 (n=1/2)"  # one value: no interval; None counted
    assert format_mean_ci([0.7, 0.7, 0.7]) == "0.700"  # zero spread: the interval collapses to the mean
    assert format_mean_ci([]) == "—" and format_mean_ci([None]) == "— (n=0/1)"


def test_a_metric_one_seed_lacks_is_shown_as_missing_with_its_n():
    """Regression: the aggregate table showed a metric one seed lacks like one every seed has (a mean over fewer
    seeds read as over all of them)."""
    from expunge.metrics.aggregate import aggregate_groups, format_interval

    recs = [rec(0, forget_acc=0.9, zrf=0.5), rec(1, forget_acc=0.92), rec(2, forget_acc=0.94, zrf=None)]
    g = aggregate_groups(recs)[0]
    assert format_interval(g["metrics"]["zrf"]) == "0.500 (n=1/3)"
    assert format_interval(g["metrics"]["forget_acc"]).endswith("± 0.050")  # every seed has it: no n
    assert format_interval(aggregate_groups([rec(0, zrf=None), rec(1, zrf=None)])[0]["metrics"]["zrf"]) == \
        "— (n=0/2)"


def test_format_mean_ci_silences_only_the_degenerate_input_warning():
    import warnings
    from unittest import mock

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert format_mean_ci([0.7]) == "0.700"  # mean_ci warns DegenerateInputWarning here: silenced
    assert caught == []

    def warns_otherwise(values, **kw):
        warnings.warn("something else", RuntimeWarning, stacklevel=2)
        return {"mean": 1.0, "low": 1.0, "high": 1.0}

    with mock.patch("expunge.metrics.aggregate.mean_ci", warns_otherwise), pytest.warns(RuntimeWarning):
        assert format_mean_ci([1.0, 1.0]) == "1.000"


def test_groups_by_method_request_and_step():
    from expunge.metrics.aggregate import aggregate_groups, format_interval

    a = [rec(s, forget_acc=0.9 + 0.01 * s) | {"time_s": 1.0 + s, "time_ratio_to_retrain": 0.1} for s in range(3)]
    b = [rec(s, forget_acc=0.5) | {"method": "finetune", "params": {}} for s in range(2)]
    steps = [rec(0, forget_acc=0.1) | {"scenario": "sequential", "step": k} for k in (1, 2)]
    groups = aggregate_groups([*a, *b, *steps, {"error": "not applicable"}])
    assert [(g["method"], g.get("step"), g["n_seeds"]) for g in groups] == [
        ("ssd", None, 3), ("finetune", None, 2), ("ssd", 1, 1), ("ssd", 2, 1)]
    assert groups[0]["metrics"]["forget_acc"]["mean"] == pytest.approx(0.91)
    assert groups[0]["times"]["time_s"]["mean"] == pytest.approx(2.0)
    assert groups[0]["retrain"]["forget_acc"]["reason"] == "zero variance"
    assert format_interval(groups[0]["metrics"]["forget_acc"]).startswith("0.910 ± ")
    assert format_interval(groups[1]["metrics"]["forget_acc"]) == "0.500"
    with pytest.raises(ValueError, match="repeated seeds"):
        aggregate_groups([a[0], a[0]])
    with pytest.raises(ValueError, match="no run records"):
        aggregate_groups([{"error": "x"}])


def test_gap_closed_known_answers():
    def g(o: float | None, u: float | None, r: float | None, **kw: float) -> float | None:
        return gap_closed({"original": {"forget_acc": o}, "metrics": {"forget_acc": u}, "retrain": {"forget_acc": r}},
                          "forget_acc", **kw)

    assert g(0.99, 0.99, 0.92) == 0.0  # did nothing
    assert g(0.99, 0.92, 0.92) == pytest.approx(1.0)  # matches the retrain
    assert g(0.99, 0.955, 0.92) == pytest.approx(0.5)
    assert g(1.0, 0.0, 0.98) == pytest.approx(50.0)  # over-forgets a fine class the retrain still gets right
    assert g(0.52, 0.54, 0.50) == pytest.approx(-1.0)  # moved away from the retrain (an MIA AUC, say)
    assert g(0.9, 0.8, 0.9) is None and g(0.9, None, 0.8) is None  # no gap / missing value: undefined
    assert g(0.95, 0.94, 0.945, min_gap=0.01) is None and g(0.95, 0.94, 0.93, min_gap=0.01) == pytest.approx(0.5)
