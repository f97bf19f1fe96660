"""Properties of the whole tier-0/1 suite on a tiny blobs/mlp random-forgetting request:

* retrain as the method (bit-identical to the oracle) gives zero gap to the Retrain on every metric and no MIA
  advantage over it (and near-chance membership signals, since forget and test are both unseen);
* "do nothing" (an exact copy of the Original in the unlearned role — no method involved) reproduces the Original's
  numbers on every metric;
* (tests/contract/test_metrics_contract.py checks every metric's metadata, tier 2 and more requests.)
"""

from __future__ import annotations

import copy
import math

import pytest
from fakes_tier01 import TINY, blobs

from expunge.data.request import ForgetRequest
from expunge.metrics.base import METRICS, Tier, evaluate
from expunge.protocols.pipeline import Prepared, prepare_splits, run_step

# Every registered classification metric of tiers 0-1 (tier 2 has its own module): a new metric is checked here too.
SUITE = [n for n, c in METRICS.items() if c.tier <= Tier.STANDARD and "classification" in c.tasks]
MIA = [n for n, c in METRICS.items() if c.tier <= Tier.STANDARD and c.family.startswith("mia")
       and "classification" in c.tasks]


@pytest.fixture(scope="module")
def prep(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    from expunge.store import ArtifactStore

    ds = blobs(n_per_class_train=30, n_per_class_test=30, spread=1.6, seed=5)
    splits = ForgetRequest("random", fraction=0.25).resolve(ds, seed=0)
    store = ArtifactStore(tmp_path_factory.mktemp("suite-store"))
    return prepare_splits(ds, "mlp", splits, store=store, recipe=TINY, metrics=SUITE, tier=1, progress=False)


def test_retrain_as_method_has_zero_gap_and_no_mia_advantage(prep):
    record, _ = run_step(prep, "retrain", {"same_seeds_as_oracle": True}, metrics=SUITE, tier=1)
    checked = 0
    for name in SUITE:
        u, r = record.metrics[name], record.retrain[name]
        if r is None:  # self-comparisons (weight_l2_to_retrain) and undefined recoveries
            continue
        assert u == pytest.approx(r, abs=1e-9), name
        assert record.gap_to_retrain[name] == pytest.approx(0.0, abs=1e-9), name
        checked += 1
    assert checked >= 35
    assert record.metrics["avg_gap_salun"] == 0.0 and record.metrics["tow"] == 1.0
    assert record.metrics["agreement_top1_forget"] == 1.0
    assert record.metrics["relearn_steps"] == record.retrain["relearn_steps"]
    for name in MIA:  # advantage over the oracle is zero by construction; the oracle itself is near chance
        if record.retrain[name] is not None:
            assert record.metrics[name] - record.retrain[name] == pytest.approx(0.0, abs=1e-12), name
    assert abs(record.metrics["mia_loss_threshold_yeom"] - 0.5) < 0.2
    assert abs(record.metrics["lira_offline_auc"] - 0.5) < 0.2
    assert record.metrics["mufac_forgetting_score"] < 0.2


def test_do_nothing_reproduces_the_original(prep):
    ctx = prep.eval_ctx.with_model("unlearned", copy.deepcopy(prep.original.model))  # no method involved
    res = evaluate(ctx, SUITE, tier=1)
    for name in SUITE:
        u, o = res[name]["unlearned"], res[name]["original"]
        if o.value is None and "compared with itself" in (o.reason or ""):  # weight_l2_to_original: 0 for a copy
            assert u.value == 0.0, name
            continue
        assert (u.value is None) == (o.value is None), name
        if u.value is not None:
            assert math.isclose(u.value, o.value, rel_tol=0, abs_tol=1e-12), name
    assert res["relearn_steps"]["unlearned"].value == 0.0  # the Original is at its own relearn target
