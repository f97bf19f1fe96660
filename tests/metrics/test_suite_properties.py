"""Properties of the whole tier-0/1 suite on a tiny blobs/mlp random-forgetting request:

* retrain as the method (bit-identical to the oracle) gives zero gap to the Retrain on every metric and no MIA
  advantage over it (and near-chance membership signals, since forget and test are both unseen);
* "do nothing" (an exact copy of the Original in the unlearned role — no method involved) reproduces the Original's
  numbers on every metric;
* every metric is described with its tier and inputs.
"""

from __future__ import annotations

import copy
import math

import pytest
from fakes_tier01 import TINY, blobs

from expunge.data.request import ForgetRequest
from expunge.metrics.base import METRICS, evaluate
from expunge.protocols.pipeline import Prepared, prepare_splits, run_step

TIER0 = ["classwise_acc_test", "classwise_acc_test_min_retain_classes", "avg_gap_salun", "tow",
         "mufac_forgetting_score", "indiscernibility", "nomus", "mia_eff_svc_conf_salun",
         "mia_entropy_svc_retain_vs_test_badteacher", "mia_entropy_lr_retain_vs_test_ssd",
         "mia_loss_threshold_best", "mia_loss_threshold_yeom", "symkl_to_retrain_forget", "symkl_to_retrain_test",
         "activation_distance_l2_forget", "activation_distance_l2_test", "activation_distance_l1_forget",
         "activation_distance_l1_test", "agreement_top1_forget", "agreement_top1_test", "js_to_original_forget",
         "js_to_original_test", "zrf", "zrf_legacy_badteacher", "margin_forget_median", "margin_test_median",
         "margin_median_gap_forget_test", "weight_l2_to_original", "weight_l2_to_retrain"]
TIER1 = ["relearn_steps", "ain", "relearn_attack_recovery_k10", "relearn_attack_recovery_k10pct",
         "probe_membership_auc", "probe_forget_label_acc", "cka_to_original_forget", "cka_to_original_test",
         "quant_recovery_int8", "prune_recovery_30pct", "lira_offline_auc", "lira_offline_tpr_at_1pct_fpr"]
MIA = ["mia_loss_threshold_yeom", "mia_loss_threshold_best", "mufac_forgetting_score", "probe_membership_auc",
       "lira_offline_auc", "mia_entropy_lr_retain_vs_test_ssd", "mia_eff_svc_conf_salun"]


@pytest.fixture(scope="module")
def prep(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    from expunge.store import ArtifactStore

    ds = blobs(n_per_class_train=30, n_per_class_test=30, spread=1.6, seed=5)
    splits = ForgetRequest("random", fraction=0.25).resolve(ds, seed=0)
    store = ArtifactStore(tmp_path_factory.mktemp("suite-store"))
    return prepare_splits(ds, "mlp", splits, store=store, recipe=TINY, metrics=TIER0 + TIER1, tier=1,
                          progress=False)


def test_registered_with_tier_and_inputs():
    for name in TIER0 + TIER1:
        d = METRICS.get(name).describe()
        assert d["tier"] == (1 if name in TIER1 else 0) and d["definition"] and "needs" in d, name
        assert d["run_needs"] == list(METRICS.get(name).run_needs), name


def test_retrain_as_method_has_zero_gap_and_no_mia_advantage(prep):
    record, _ = run_step(prep, "retrain", {"same_seeds_as_oracle": True}, metrics=TIER0 + TIER1, tier=1)
    checked = 0
    for name in TIER0 + TIER1:
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
        assert record.metrics[name] - record.retrain[name] == pytest.approx(0.0, abs=1e-12), name
    assert abs(record.metrics["mia_loss_threshold_yeom"] - 0.5) < 0.2
    assert abs(record.metrics["lira_offline_auc"] - 0.5) < 0.2
    assert record.metrics["mufac_forgetting_score"] < 0.2


def test_do_nothing_reproduces_the_original(prep):
    ctx = prep.eval_ctx.with_model("unlearned", copy.deepcopy(prep.original.model))  # no method involved
    res = evaluate(ctx, TIER0 + TIER1, tier=1)
    for name in TIER0 + TIER1:
        u, o = res[name]["unlearned"], res[name]["original"]
        if name == "weight_l2_to_original":  # the only self-referencing metric: 0 for a copy, None for itself
            assert u.value == 0.0 and o.value is None
            continue
        assert (u.value is None) == (o.value is None), name
        if u.value is not None:
            assert math.isclose(u.value, o.value, rel_tol=0, abs_tol=1e-12), name
    assert res["relearn_steps"]["unlearned"].value == 0.0  # the Original is at its own relearn target
