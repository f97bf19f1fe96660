"""The runner's guards, by fault injection: a method that reaches the caller's model (here: a copy that shares its
tensors) is caught, and nothing is stored for it."""

from __future__ import annotations

import pytest

from expunge.protocols import runner
from expunge.protocols.pipeline import run_step
from expunge.protocols.runner import InputModelModified


def test_a_method_that_modifies_the_callers_model_is_refused(prepared_class3, monkeypatch):
    original = {k: v.clone() for k, v in prepared_class3.original.model.state_dict().items()}
    stored = prepared_class3.store.root / "unlearned"
    before = sorted(stored.iterdir()) if stored.is_dir() else []
    monkeypatch.setattr(runner.copy, "deepcopy", lambda model: model)  # the fault: no private copy
    try:
        with pytest.raises(InputModelModified, match="'finetune' modified the original"):
            run_step(prepared_class3, "finetune", {"epochs": 1})
    finally:  # the session-scoped Original is shared by other tests: put it back whatever happened
        prepared_class3.original.model.load_state_dict(original)
    assert (sorted(stored.iterdir()) if stored.is_dir() else []) == before
