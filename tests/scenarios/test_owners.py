"""owners: the `owners` request kind (every example of K owners) and its preset fallback."""

from __future__ import annotations

import numpy as np
import pytest
from scenario_helpers import settings

from expunge.data.request import ForgetRequest
from expunge.errors import ForgetIsWholeTrainingSet, MalformedForgetSpec
from expunge.scenarios.base import get_scenario


def test_owner_request_forgets_whole_owner_groups(digits):
    s = ForgetRequest.parse("owners:5").resolve(digits, seed=0)
    owners = digits.train.owners
    chosen = np.unique(owners[s.forget])
    assert chosen.size == 5
    assert np.isin(owners[s.retain], chosen).sum() == 0  # no example of a chosen owner is retained


def test_bad_owner_counts(digits):
    with pytest.raises(MalformedForgetSpec):
        ForgetRequest.parse("owners:0")
    with pytest.raises(ForgetIsWholeTrainingSet):
        ForgetRequest.parse("owners:100000").resolve(digits)


def test_validation_draws_other_owners_and_falls_back_to_the_random_preset(session_store, fast_recipe, digits):
    ev, val = settings("owners", session_store, fast_recipe, {"n_owners": 4})
    owners = digits.train.owners
    a = set(owners[ev.steps[0].splits.forget])
    b = set(owners[val.steps[0].splits.forget])
    assert len(a) == len(b) == 4 and a != b
    assert get_scenario("owners").preset_fallback == "random"
