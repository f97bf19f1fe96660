"""expunge.metrics.functional.margins: quantile summary and the order-statistic se of the median."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expunge.errors import DegenerateInputWarning
from expunge.metrics.functional.margins import margin_summary, median_se


def test_known_answers():
    s = margin_summary([0, 1, 2, 3, 4])
    assert (s["p50"], s["p25"], s["p75"], s["mean"], s["n"]) == (2.0, 1.0, 3.0, 2.0, 5)
    assert s["p5"] == pytest.approx(0.2) and s["p95"] == pytest.approx(3.8)
    assert median_se(np.arange(100)) == pytest.approx(4.95)


def test_degenerate_inputs():
    with pytest.warns(DegenerateInputWarning):
        s = margin_summary([])
    assert s["p50"] is None and s["n"] == 0
    assert median_se([3.0]) is None and median_se([2.0, 2.0, 2.0]) == 0.0
    with pytest.raises(ValueError):
        margin_summary([np.nan])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-50, 50), min_size=2, max_size=60))
def test_se_nonnegative_and_quantiles_ordered(xs):
    s = margin_summary(xs)
    assert s["p5"] <= s["p25"] <= s["p50"] <= s["p75"] <= s["p95"]
    assert median_se(xs) >= 0.0
