"""random: the `random` request kind (a seeded uniform fraction) and the validation draw (seed + 1000)."""

from __future__ import annotations

import numpy as np
import pytest
from scenario_helpers import settings

from expunge.data.request import ForgetRequest
from expunge.errors import MalformedForgetSpec


def test_random_fraction_is_seeded(digits):
    a = ForgetRequest.parse("random:0.1").resolve(digits, seed=1)
    b = ForgetRequest.parse("random:0.1").resolve(digits, seed=1)
    c = ForgetRequest.parse("random:0.1").resolve(digits, seed=2)
    assert a.forget.size == round(0.1 * len(digits.train))
    assert np.array_equal(a.forget, b.forget) and not np.array_equal(a.forget, c.forget)


@pytest.mark.parametrize("spec", ["random:0", "random:1", "random:1.5", "random:x"])
def test_fraction_must_be_in_the_open_unit_interval(spec):
    with pytest.raises(MalformedForgetSpec, match="fraction"):
        ForgetRequest.parse(spec)


def test_validation_draw_differs_with_the_same_size(session_store, fast_recipe):
    ev, val = settings("random", session_store, fast_recipe, {"fraction": 0.1})
    f_ev, f_val = ev.steps[0].splits.forget_ids, val.steps[0].splits.forget_ids
    assert f_ev.size == f_val.size and not np.array_equal(f_ev, f_val)
