"""sub-class: the `subclass` request kind (coarse labels), the matched MIA objective and the validation request."""

from __future__ import annotations

import pytest
from scenario_helpers import settings

from expunge.data.datasets import load_dataset
from expunge.data.request import ForgetRequest, dataset_for
from expunge.errors import InvalidForgetRequest
from expunge.scenarios.base import get_scenario


def test_subclass_needs_coarse_labels(digits):
    with pytest.raises(InvalidForgetRequest, match="coarse"):
        ForgetRequest.parse("subclass:3").resolve(digits)
    coarse = dataset_for("digits", "subclass")  # the kind says which label set to load
    assert coarse.label_set == "coarse" and coarse is load_dataset("digits", labels="coarse")
    s = ForgetRequest.parse("subclass:3").resolve(coarse)
    assert (coarse.train.fine[s.forget] == 3).all()
    assert set(coarse.train.y.numpy()[s.forget]) == {1}  # 3 is odd
    assert coarse.fingerprint != digits.fingerprint and s.request.spec == "subclass:3"


def test_validation_forgets_another_fine_class_and_tunes_on_the_matched_mia(session_store, fast_recipe):
    ev, val = settings("sub-class", session_store, fast_recipe, {"fine_class": "3"})
    fine = ev.steps[0].dataset.train.fine
    assert set(fine[ev.steps[0].splits.forget]) == {3}
    (other,) = set(fine[val.steps[0].splits.forget])
    assert other != 3
    sc = get_scenario("sub-class")
    assert "mia_loss_auc_matched" in sc.objective_metrics and sc.preset_fallback == "full-class"
