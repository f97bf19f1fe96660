"""avg_gap_salun and tow on models with exactly known accuracies and confidences."""

from __future__ import annotations

import numpy as np
import pytest
from fakes_tier01 import logits_with, lookup_ctx

from expunge.metrics.base import MetricValue, evaluate

C = 10
N_F, N_R, N_T = 25, 40, 40
Y_TRAIN = [i % C for i in range(N_F + N_R)]
Y_TEST = [i % C for i in range(N_T)]
FORGET = list(range(N_F))


def rows(ys: list[int], spec: list[tuple[float, bool]]) -> list[np.ndarray]:
    """(confidence, correct) per example; wrong ones put their mass on the next class."""
    return [logits_with(p, y, C, argmax=None if ok else (y + 1) % C) for y, (p, ok) in zip(ys, spec, strict=True)]


def tables() -> dict[str, np.ndarray]:
    yf, yr = Y_TRAIN[:N_F], Y_TRAIN[N_F:]
    u = rows(yf, [(0.99, True)] * N_F) + rows(yr, [(0.99, True)] * N_R) + rows(Y_TEST, [(0.2, True)] * N_T)
    r = (rows(yf, [(0.2, True)] * 5 + [(0.05, False)] * 20) + rows(yr, [(0.99, True)] * N_R)
         + rows(Y_TEST, [(0.2, True)] * 20 + [(0.05, False)] * 20))
    return {"unlearned": np.asarray(u), "retrain": np.asarray(r)}


def test_known_answers():
    ctx = lookup_ctx(Y_TRAIN, Y_TEST, FORGET, C, tables())
    res = evaluate(ctx, ["avg_gap_salun", "tow", "mia_eff_svc_conf_salun", "forget_acc", "test_acc"])
    assert res["forget_acc"]["retrain"].value == pytest.approx(0.2) and res["test_acc"]["retrain"].value == 0.5
    assert res["mia_eff_svc_conf_salun"]["unlearned"].value == 0.0
    assert res["mia_eff_svc_conf_salun"]["retrain"].value == 1.0
    # |UA| 0 vs 80, |MIA| 0 vs 100, |RA| 100 vs 100, |TA| 100 vs 50  ->  (80 + 100 + 0 + 50) / 4
    gap = res["avg_gap_salun"]["unlearned"]
    assert gap.value == pytest.approx(57.5) and gap.se is not None and gap.se > 0
    assert gap.details["model"]["UA"] == pytest.approx(0.0) and gap.details["retrain"]["UA"] == pytest.approx(80.0)
    # ToW = (1 - 0.8) * (1 - 0) * (1 - 0.5)
    assert res["tow"]["unlearned"].value == pytest.approx(0.1)
    assert res["avg_gap_salun"]["retrain"].value == 0.0 and res["tow"]["retrain"].value == 1.0


def test_no_reference_gives_none():
    t = tables()
    ctx = lookup_ctx(Y_TRAIN, Y_TEST, FORGET, C, {"unlearned": t["unlearned"]})
    res = evaluate(ctx, ["avg_gap_salun", "tow"], roles=("unlearned",))
    for name in ("avg_gap_salun", "tow"):
        assert res[name]["unlearned"] == MetricValue(None, reason="no retrain model")
