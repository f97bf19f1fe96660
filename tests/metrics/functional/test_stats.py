"""Known answers and degenerate cases of expunge.metrics.functional.stats.mean_ci."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from expunge.errors import DegenerateInputWarning
from expunge.metrics.functional.stats import mean_ci


def test_t_interval_known_answer() -> None:
    res = mean_ci([1.0, 2.0, 3.0, 4.0])
    half = stats.t.ppf(0.975, 3) * np.std([1, 2, 3, 4], ddof=1) / 2.0  # 3.182446 * 1.290994 / 2
    assert half == pytest.approx(2.054260, abs=1e-6)
    assert res["mean"] == 2.5 and res["n"] == 4 and res["method"] == "t"
    assert res["low"] == pytest.approx(2.5 - half) and res["high"] == pytest.approx(2.5 + half)


def test_bootstrap_is_seeded_and_contains_mean() -> None:
    x = np.random.default_rng(0).normal(1.0, 0.5, size=30)
    a = mean_ci(x, method="bootstrap", seed=1)
    assert a == mean_ci(x, method="bootstrap", seed=1)
    assert a["low"] < a["mean"] < a["high"] and a["method"] == "bootstrap"
    t = mean_ci(x)
    assert a["low"] == pytest.approx(t["low"], abs=0.1) and a["high"] == pytest.approx(t["high"], abs=0.1)


@pytest.mark.parametrize("method", ["t", "bootstrap"])
def test_single_value_collapses_with_warning(method: str) -> None:
    with pytest.warns(DegenerateInputWarning):
        res = mean_ci([0.7], method=method)  # type: ignore[arg-type]
    assert res["mean"] == res["low"] == res["high"] == 0.7 and res["n"] == 1


@pytest.mark.parametrize("method", ["t", "bootstrap"])
def test_zero_variance_collapses_with_warning(method: str) -> None:
    with pytest.warns(DegenerateInputWarning):
        res = mean_ci([0.5, 0.5, 0.5], method=method)  # type: ignore[arg-type]
    assert res["low"] == res["high"] == res["mean"] == 0.5


def test_empty_and_invalid() -> None:
    with pytest.warns(DegenerateInputWarning):
        res = mean_ci([])
    assert res["mean"] is None and res["low"] is None and res["n"] == 0
    with pytest.raises(ValueError):
        mean_ci([1.0, np.nan])
    with pytest.raises(ValueError):
        mean_ci([1.0, 2.0], method="normal")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        mean_ci([1.0, 2.0], confidence=95)
