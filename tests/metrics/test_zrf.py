"""zrf (true JS, random-init twin from the run's model spec, seed 0) and the legacy Bad Teacher number."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from fakes_tier01 import LookupLogits, lookup_ctx

from expunge.metrics.base import RunInfo, evaluate

Y_TRAIN, Y_TEST = [0, 1, 0, 1], [0, 1]


@dataclass
class FakeSpec:
    """A model spec whose "random" model returns a fixed table; records the seed it was built with."""

    table: np.ndarray
    seeds: list[int]

    def build(self, *, seed: int) -> LookupLogits:
        self.seeds.append(seed)
        return LookupLogits(self.table)

    def to_dict(self) -> dict[str, object]:
        return {"name": "fake", "table": self.table.tolist()}


def ctx_with(u_rows: np.ndarray, rand_rows: np.ndarray, spec: bool = True):
    fake = FakeSpec(rand_rows, [])
    run = RunInfo(model_spec=fake) if spec else None
    return lookup_ctx(Y_TRAIN, Y_TEST, [0, 1], 2, {"unlearned": u_rows}, run=run), fake


def test_equal_to_random_twin_scores_one_and_seed_zero_is_used():
    rows = np.log(np.tile([[0.3, 0.7]], (6, 1)))
    ctx, fake = ctx_with(rows, rows)
    v = evaluate(ctx, ["zrf"], roles=("unlearned",))["zrf"]["unlearned"]
    assert v.value == pytest.approx(1.0) and fake.seeds == [0] and v.details["random_seed"] == 0


def test_opposite_one_hots_score_zero():
    ctx, _ = ctx_with(np.tile([[60.0, -60.0]], (6, 1)), np.tile([[-60.0, 60.0]], (6, 1)))
    assert evaluate(ctx, ["zrf"], roles=("unlearned",))["zrf"]["unlearned"].value == pytest.approx(0.0, abs=1e-9)


def test_legacy_known_answer():
    # spec 2.2: one row p = (0.5, 0.5), q = (0.7, 0.3): legacy JS term 0.010679 (true JS 0.021006 nats)
    ctx, _ = ctx_with(np.log(np.tile([[0.5, 0.5]], (6, 1))), np.log(np.tile([[0.7, 0.3]], (6, 1))))
    res = evaluate(ctx, ["zrf_legacy_badteacher", "zrf"], roles=("unlearned",))
    assert res["zrf_legacy_badteacher"]["unlearned"].value == pytest.approx(1 - 0.010679, abs=1e-6)
    assert res["zrf_legacy_badteacher"]["unlearned"].details["legacy"] is True
    assert res["zrf"]["unlearned"].value == pytest.approx(1 - 0.021006 / np.log(2), abs=1e-6)


def test_no_model_spec_gives_none_with_reason():
    ctx, _ = ctx_with(np.zeros((6, 2)), np.zeros((6, 2)), spec=False)
    res = evaluate(ctx, ["zrf", "zrf_legacy_badteacher"], roles=("unlearned",))
    for name in ("zrf", "zrf_legacy_badteacher"):
        v = res[name]["unlearned"]
        assert v.value is None and "model_spec" in v.reason


def test_twin_is_built_once_per_evaluation():
    rows = np.log(np.tile([[0.3, 0.7]], (6, 1)))
    fake = FakeSpec(rows, [])
    ctx = lookup_ctx(Y_TRAIN, Y_TEST, [0, 1], 2, {"unlearned": rows, "original": rows * 2, "retrain": rows * 3},
                     run=RunInfo(model_spec=fake))
    evaluate(ctx, ["zrf", "zrf_legacy_badteacher"])
    assert fake.seeds == [0]
