"""Margin summaries: median logit-scaled confidence on forget / test and their gap."""

from __future__ import annotations

import numpy as np
import pytest
from fakes_tier01 import lookup_ctx, registered

from expunge.metrics.base import evaluate

NAMES = registered(family="margins")


def test_known_answers():
    # two classes, label 0, logits (phi, 0): phi = z_0 - logsumexp(z_1) = phi exactly
    forget_phi, retain_phi, test_phi = [0.0, 1.0, 2.0, 3.0, 4.0], [9.0], [1.0, 1.0, 1.0]
    rows = [[p, 0.0] for p in forget_phi + retain_phi + test_phi]
    ctx = lookup_ctx([0] * 6, [0] * 3, [0, 1, 2, 3, 4], 2, {"unlearned": np.asarray(rows)})
    res = evaluate(ctx, NAMES, roles=("unlearned",))
    f = res["margin_forget_median"]["unlearned"]
    assert f.value == 2.0 and f.details["p25"] == 1.0 and f.details["mean"] == 2.0 and f.details["n"] == 5
    assert res["margin_test_median"]["unlearned"].value == 1.0
    assert res["margin_test_median"]["unlearned"].se == 0.0  # tied centre
    assert res["margin_median_gap_forget_test"]["unlearned"].value == 1.0


def test_spec_phi_known_answer():
    # spec 4: z = (2, 0, 0), y = 0 -> 2 - ln 2
    ctx = lookup_ctx([0, 0], [0], [0], 3, {"unlearned": np.array([[2.0, 0, 0]] * 3)})
    v = evaluate(ctx, ["margin_forget_median"], roles=("unlearned",))["margin_forget_median"]["unlearned"]
    assert v.value == pytest.approx(1.306853, abs=1e-6) and v.se is None  # one example: no spread to estimate
