"""Known answers (spec/metrics.md section 1) and edge cases of expunge.metrics.functional.accuracy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from expunge.errors import DegenerateInputWarning
from expunge.metrics.functional.accuracy import (
    accuracy,
    avg_gap_salun,
    classwise_accuracy,
    gap_to_reference,
    svd_metric,
    tow,
    ua_salun_pct,
)

LOGITS = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
Y = np.array([0, 0, 1])


def test_accuracy_known_answer() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert accuracy(LOGITS, Y) == pytest.approx(1 / 3)


def test_accuracy_accepts_predicted_labels() -> None:
    assert accuracy(np.array([0, 1, 0]), Y) == pytest.approx(1 / 3)


@pytest.mark.parametrize("logits", [np.zeros((0, 2)), np.zeros((0, 0)), np.zeros(0)])
def test_accuracy_empty_is_none_with_warning(logits: np.ndarray) -> None:
    with pytest.warns(DegenerateInputWarning):
        assert accuracy(logits, np.zeros(0, dtype=int)) is None


def test_accuracy_length_mismatch_raises() -> None:
    with pytest.raises(ValueError):
        accuracy(LOGITS, [0, 1])


def test_classwise_accuracy_omits_absent_classes() -> None:
    res = classwise_accuracy(LOGITS, Y, num_classes=4)
    assert res == {0: pytest.approx(0.5), 1: pytest.approx(0.0)}
    assert all(np.isfinite(v) for v in res.values())


def test_classwise_accuracy_rejects_out_of_range_labels() -> None:
    with pytest.raises(ValueError):
        classwise_accuracy(LOGITS, [0, 0, 5], num_classes=2)


def test_gap_to_reference_known_answer() -> None:
    res = gap_to_reference(0.90, [0.94, 0.96])
    assert res["gap"] == pytest.approx(0.05)
    assert res["signed"] == pytest.approx(-0.05)
    assert res["ref_mean"] == pytest.approx(0.95)
    assert res["ref_std"] == pytest.approx(np.std([0.94, 0.96], ddof=1))
    assert res["reason"] is None


@pytest.mark.parametrize("ref", [None, []])
def test_gap_without_reference_is_none(ref: list[float] | None) -> None:
    res = gap_to_reference(0.9, ref)
    assert res["gap"] is None and res["signed"] is None and res["reason"] == "no reference"


def test_gap_single_reference_has_no_std() -> None:
    res = gap_to_reference(0.9, [0.8])
    assert res["gap"] == pytest.approx(0.1) and res["ref_std"] is None


SALUN_U = {"UA": 2.85, "MIA": 14.39, "RA": 99.62, "TA": 93.93}
SALUN_R = {"UA": 5.24, "MIA": 12.88, "RA": 100.00, "TA": 94.26}


def test_avg_gap_salun_known_answer() -> None:
    assert avg_gap_salun(SALUN_U, SALUN_R) == pytest.approx(1.1525)


def test_avg_gap_salun_aliases_and_seed_lists() -> None:
    u = {"ua": 2.85, "MIA_Efficacy": 14.39, "ra": 99.62, "ta": 93.93}
    r = {"UA": [5.0, 5.48], "MIA": 12.88, "RA": 100.0, "TA": 94.26}
    assert avg_gap_salun(u, r) == pytest.approx(1.1525)


def test_avg_gap_salun_missing_key_raises() -> None:
    with pytest.raises(ValueError):
        avg_gap_salun({"UA": 1.0}, SALUN_R)


def test_avg_gap_salun_no_reference() -> None:
    with pytest.warns(DegenerateInputWarning, match="no reference"):
        assert avg_gap_salun(SALUN_U, None) is None


def test_tow_known_answer() -> None:
    assert tow((0.2, 1.0, 0.90), (0.1, 1.0, 0.95)) == pytest.approx(0.855)
    assert tow({"forget": 0.2, "retain": 1.0, "test": 0.9},
               {"forget": 0.1, "retain": 1.0, "test": 0.95}) == pytest.approx(0.855)


def test_tow_identical_is_one_and_bounds() -> None:
    assert tow((0.3, 0.9, 0.8), (0.3, 0.9, 0.8)) == pytest.approx(1.0)
    assert tow((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        tow((1.5, 1.0, 1.0), (1.0, 1.0, 1.0))
    with pytest.warns(DegenerateInputWarning):
        assert tow((0.3, 0.9, 0.8), None) is None


def test_salun_and_svd_aliases() -> None:
    assert ua_salun_pct(0.9715) == pytest.approx(2.85)
    assert svd_metric(0.9, 0.1) == pytest.approx(0.81)
    with pytest.raises(ValueError):
        ua_salun_pct(97.15)
