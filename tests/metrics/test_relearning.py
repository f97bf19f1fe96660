"""Tier-1 relearning metrics (relearn_steps, ain, relearn_attack_recovery_*) on a tiny blobs/mlp problem.

(Named test_relearning.py: tests/metrics/functional/test_relearn.py already holds the formulas' known answers, and
two test modules may not share a basename.)"""

from __future__ import annotations

import copy

import pytest
import torch
from fakes_tier01 import TINY, blobs, registered

from expunge.data.request import ForgetRequest
from expunge.metrics import relearn as relearn_mod
from expunge.metrics.base import EvalContext, evaluate
from expunge.protocols.pipeline import Prepared, prepare_splits
from expunge.store import ArtifactStore

NAMES = registered(family="relearn")


@pytest.fixture(scope="module")
def prep(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    ds = blobs()
    splits = ForgetRequest("class", classes=("2",)).resolve(ds, seed=0)
    store = ArtifactStore(tmp_path_factory.mktemp("relearn-store"))
    return prepare_splits(ds, "mlp", splits, store=store, recipe=TINY, metrics=["forget_acc"], progress=False)


def do_nothing_ctx(prep: Prepared) -> EvalContext:
    return prep.eval_ctx.with_model("unlearned", copy.deepcopy(prep.original.model))


def test_values_for_the_three_roles(prep):
    res = evaluate(do_nothing_ctx(prep), NAMES)
    steps = {r: res["relearn_steps"][r] for r in ("unlearned", "original", "retrain")}
    assert steps["original"].value == 0.0 and steps["unlearned"].value == 0.0  # already at the target
    assert steps["retrain"].value > 0 and steps["retrain"].details["acc_start"] == 0.0
    assert res["ain"]["retrain"].value == 1.0 and res["ain"]["unlearned"].value == 0.0  # hidden, not removed
    for name in ("relearn_attack_recovery_k10", "relearn_attack_recovery_k10pct"):
        assert res[name]["original"].value is None and "nothing was forgotten" in res[name]["original"].reason
        r = res[name]["retrain"]
        d = r.details
        assert r.value == pytest.approx((d["acc_after"] - d["acc_before"]) / (d["acc_original"] - d["acc_before"]))
    assert res["relearn_attack_recovery_k10"]["retrain"].details["k"] == 10
    assert res["relearn_attack_recovery_k10pct"]["retrain"].details["k"] == 3  # 10 % of 30


def test_deterministic_and_persisted_in_the_store(prep, monkeypatch):
    first = evaluate(do_nothing_ctx(prep), ["relearn_steps"], roles=("retrain",))["relearn_steps"]["retrain"]
    assert prep.store.root.joinpath("metric_relearn").is_dir()

    def boom(*_a, **_k):
        raise AssertionError("relearn recomputed although the store holds it")

    monkeypatch.setattr(relearn_mod, "relearn_time", boom)
    fresh = EvalContext(prep.dataset, prep.splits, {"original": prep.original.model, "retrain": prep.oracle.model},
                        seed=prep.seed, run=prep.eval_ctx.run)
    again = evaluate(fresh, ["relearn_steps"], roles=("retrain",))["relearn_steps"]["retrain"]
    assert again.value == first.value and again.details == first.details


def test_attack_is_deterministic(prep):
    a = evaluate(do_nothing_ctx(prep), ["relearn_attack_recovery_k10"], roles=("retrain",))
    b = evaluate(do_nothing_ctx(prep), ["relearn_attack_recovery_k10"], roles=("retrain",))
    assert a["relearn_attack_recovery_k10"]["retrain"] == b["relearn_attack_recovery_k10"]["retrain"]


def test_missing_run_info_gives_none(prep):
    ctx = EvalContext(prep.dataset, prep.splits, {"original": prep.original.model, "retrain": prep.oracle.model})
    res = evaluate(ctx, NAMES, roles=("retrain",))
    for name in NAMES:
        v = res[name]["retrain"]
        assert v.value is None and v.reason.startswith("run info lacks"), name


def test_relearn_time_target_and_cap(prep):
    x, y = prep.dataset.train.x[prep.splits.forget], prep.dataset.train.y[prep.splits.forget]
    before = [p.detach().clone() for p in prep.oracle.model.parameters()]
    zero = relearn_mod.relearn_time(prep.oracle.model, x, y, 0.0, seed=0)
    assert zero["steps"] == 0 and not zero["capped"]
    never = relearn_mod.relearn_time(prep.oracle.model, x, y, 1.01, seed=0)  # unreachable
    assert never["capped"] and never["steps"] == never["cap"] == relearn_mod.MIN_CAP_STEPS  # 30 examples: 1 batch
    assert all(torch.equal(a, b) for a, b in zip(before, prep.oracle.model.parameters(), strict=True))
