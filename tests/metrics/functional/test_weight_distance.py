"""expunge.metrics.functional.weights.l2_distance."""

from __future__ import annotations

import numpy as np
import pytest

from expunge.errors import DegenerateInputWarning
from expunge.metrics.functional.weights import l2_distance


def test_known_answer():
    res = l2_distance({"w": [3.0, 0.0]}, {"w": [0.0, 4.0]})
    assert res["distance"] == pytest.approx(5.0) and res["relative"] == pytest.approx(1.25) and res["n_params"] == 2


def test_several_tensors_are_concatenated():
    a = {"w": np.ones((2, 2)), "b": np.zeros(3)}
    b = {"w": np.zeros((2, 2)), "b": np.ones(3)}
    assert l2_distance(a, b)["distance"] == pytest.approx(np.sqrt(7))


def test_mismatch_and_degenerate():
    assert l2_distance({"w": [1.0]}, {"v": [1.0]})["distance"] is None
    assert "shapes" in l2_distance({"w": [1.0]}, {"w": [1.0, 2.0]})["reason"]
    with pytest.warns(DegenerateInputWarning):
        assert l2_distance({}, {})["reason"] == "no parameters"
    with pytest.raises(ValueError):
        l2_distance({"w": [np.inf]}, {"w": [0.0]})
