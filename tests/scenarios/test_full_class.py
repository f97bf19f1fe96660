"""full-class: the `class` request kind (class:3, class:NAME, classes:3,5) and the scenario's validation request."""

from __future__ import annotations

import numpy as np
import pytest
from scenario_helpers import settings

from expunge.data.request import ForgetRequest
from expunge.errors import InvalidForgetRequest


def test_class_request_selects_exactly_that_class(digits):
    s = ForgetRequest.parse("class:3").resolve(digits)
    assert (digits.train.y.numpy()[s.forget] == 3).all()
    assert not (digits.train.y.numpy()[s.retain] == 3).any()
    assert s.forget.size + s.retain.size == len(digits.train)
    assert s.forget_classes == (3,) and s.request.spec == "class:3"


def test_classes_and_names(digits):
    s = ForgetRequest.parse("classes:3,5").resolve(digits)
    assert set(np.unique(digits.train.y.numpy()[s.forget])) == {3, 5} and s.forget_classes == (3, 5)
    assert ForgetRequest.parse("class:3") == ForgetRequest("class", classes=("3",))


def test_unknown_class_is_named(digits):
    with pytest.raises(InvalidForgetRequest, match="class 12 does not exist"):
        ForgetRequest.parse("class:12").resolve(digits)


def test_validation_request_forgets_as_many_other_classes(session_store, fast_recipe):
    ev, val = settings("full-class", session_store, fast_recipe, {"classes": "3,5"})
    assert ev.steps[0].splits.forget_classes == (3, 5)
    other = val.steps[0].splits.forget_classes
    assert len(other) == 2 and not set(other) & {3, 5}
    assert ev.steps[0].original.key == val.steps[0].original.key  # same Original, another request
