"""Hyperparameter contract over every registered method (and scenario): no value that would silently give a wrong
run gets past validation. A NaN compares False with every bound, so before every float was checked for finiteness
``lr=nan`` ran and returned the unchanged Original (rc 0), and a negative ``clip_grad_norm`` multiplied the gradient
by a negative factor, turning NegGrad's ascent into descent (forget margin 7.4 → 27.2)."""

from __future__ import annotations

import dataclasses
import re
import typing

import pytest

from expunge.errors import InvalidHyperparameter
from expunge.methods.base import METHODS
from expunge.scenarios.base import SCENARIOS

NAMES = METHODS.names()

# Step-size and budget fields: a learning rate, a clip norm, a number of passes or steps of 0 or less makes the
# method do nothing (or the opposite of what it should).
STEP_LIKE = re.compile(r"^(lr|lr_ue|lr_ra|\w+_lr|clip_grad_norm|epochs|\w+_epochs|\w+_steps|msteps)$")
# ...except these, where 0 is a documented setting of the paper's method, not an empty run.
ZERO_ALLOWED = {
    ("sisa", "epochs"): "0 = the Original's recipe epochs spread over the stages (the reference's budget)",
    ("sisa", "epochs_per_stage"): "0 = off (the epoch budget is spread instead)",
    ("amnesiac_updates", "finetune_epochs"): "0 = subtract the updates without fine-tuning (Graves et al.'s plain "
                                             "variant)",
    ("l1_sparse", "no_l1_epochs"): "0 = the l1 term in every epoch (Jia et al.'s default E0)",
    ("scrub", "msteps"): "0 = no max-steps, SCRUB's min-step-only ablation (Kurmanji et al.)",
}
# Numeric fields without a lower bound, with the reason the paper gives none.
UNBOUNDED = {
    ("boundary_shrink", "input_range"): "the model-input values of pixels 0 and 1: any reals (normalised inputs are "
                                        "negative); validate() requires low < high",
}


def _numeric_fields(params_cls: type) -> list[tuple[dataclasses.Field, str]]:
    hints = typing.get_type_hints(params_cls)
    out = []
    for f in dataclasses.fields(params_cls):
        text = str(hints[f.name])
        if hints[f.name] in (int, float) or "float" in text or "int" in text:
            out.append((f, "float" if "float" in text else "int"))
    return out


def _bad(value: str, f: dataclasses.Field) -> str:
    """``value`` as the field takes it from the command line (a tuple field reads comma-separated items)."""
    return f"1,{value}" if isinstance(f.default, tuple) else value


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_every_float_field_refuses_non_finite_values(name, bad):
    cls = METHODS.get(name)
    for f, kind in _numeric_fields(cls.Params):
        if kind == "float":
            with pytest.raises(InvalidHyperparameter, match=rf"'{f.name}' parameter of {name} must be a finite"):
                cls.Params.from_overrides({f.name: _bad(bad, f)})
            with pytest.raises(InvalidHyperparameter, match="Fix:"):
                cls.Params(**{f.name: float(bad) if not isinstance(f.default, tuple) else (1.0, float(bad))})


@pytest.mark.parametrize("name", SCENARIOS.names())
def test_scenario_float_fields_refuse_nan(name):
    cls = SCENARIOS.get(name)
    for f, kind in _numeric_fields(cls.Params):
        if kind == "float":
            with pytest.raises(InvalidHyperparameter, match=f.name):
                cls.Params.from_overrides({f.name: "nan"})


@pytest.mark.parametrize("name", NAMES)
def test_every_numeric_field_declares_a_lower_bound(name):
    cls = METHODS.get(name)
    missing = [f.name for f, _ in _numeric_fields(cls.Params)
               if f.metadata.get("low") is None and (name, f.name) not in UNBOUNDED]
    assert not missing, f"{name}: declare low= (or list the paper's reason for none in UNBOUNDED): {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_step_sizes_budgets_and_clip_norms_refuse_zero_and_negatives(name):
    cls = METHODS.get(name)
    checked = 0
    for f, _ in _numeric_fields(cls.Params):
        if not STEP_LIKE.match(f.name):
            continue
        bad = ["-1"] if (name, f.name) in ZERO_ALLOWED else ["0", "-1"]
        for value in bad:
            with pytest.raises(InvalidHyperparameter, match=f.name):
                cls.Params.from_overrides({f.name: _bad(value, f)})
        checked += 1
    if any(f.name in ("lr", "epochs") for f in dataclasses.fields(cls.Params)):
        assert checked, f"{name} has lr/epochs fields the pattern missed"


def test_the_reported_clip_and_nan_invocations_are_refused():
    neggrad = METHODS.get("neggrad").Params
    with pytest.raises(InvalidHyperparameter, match=r"'clip_grad_norm' parameter of neggrad must be a number > 0"):
        neggrad.from_overrides({"lr": "0.05", "clip_grad_norm": "-1"})
    for name, field in (("neggrad", "lr"), ("scrub", "alpha"), ("ssd", "alpha")):
        with pytest.raises(InvalidHyperparameter, match=rf"'{field}'.*finite.*Fix: set {field} to"):
            METHODS.get(name).Params.from_overrides({field: "nan"})
    assert neggrad.from_overrides({"clip_grad_norm": "none"}).clip_grad_norm is None  # None = no clipping: allowed


def test_the_training_loop_refuses_a_non_positive_clip_norm():
    """Defence in depth for code that calls the loop directly: torch's clip_grad_norm_ scales the gradient by
    max_norm / norm, so a negative max_norm silently turns descent into ascent (and ascent into descent)."""
    import torch
    from torch import nn

    from expunge.train.loop import train_loop

    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long))]
    for bad in (-1.0, 0.0, float("nan")):
        with pytest.raises(ValueError, match="clip_grad_norm"):
            train_loop(model, batches, lambda m, b: m(b[0]).sum(), opt, clip_grad_norm=bad)
