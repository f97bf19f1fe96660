"""Offline LiRA (tier 1) on a tiny blobs/mlp problem: K_OUT reference models trained once and cached in the store,
values in range, retrain near chance, missing run info -> None."""

from __future__ import annotations

import copy

import pytest
from fakes_tier01 import TINY, blobs, registered

from expunge.data.request import ForgetRequest
from expunge.metrics import lira_offline
from expunge.metrics.base import EvalContext, evaluate
from expunge.protocols.pipeline import Prepared, prepare_splits
from expunge.store import ArtifactStore

NAMES = registered(family="mia_lira")


@pytest.fixture(scope="module")
def prep(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    ds = blobs(n_per_class_train=40, n_per_class_test=40, spread=1.6, seed=3)  # overlap: something to memorise
    splits = ForgetRequest("random", fraction=0.25).resolve(ds, seed=0)
    store = ArtifactStore(tmp_path_factory.mktemp("lira-store"))
    return prepare_splits(ds, "mlp", splits, store=store, recipe=TINY, metrics=["forget_acc"], progress=False)


def test_values_and_reference_cache(prep, monkeypatch):
    ctx = prep.eval_ctx.with_model("unlearned", copy.deepcopy(prep.original.model))
    res = evaluate(ctx, NAMES)
    refs = sorted(p.name for p in prep.store.root.joinpath("lira_reference").iterdir())
    assert len(refs) == lira_offline.K_OUT
    for role in ("unlearned", "original", "retrain"):
        auc = res["lira_offline_auc"][role]
        assert 0.0 <= auc.value <= 1.0 and auc.se is not None and auc.details["k_out"] == lira_offline.K_OUT
        assert 0.0 <= res["lira_offline_tpr_at_1pct_fpr"][role].value <= 1.0
    assert res["lira_offline_auc"]["unlearned"].value == res["lira_offline_auc"]["original"].value
    assert abs(res["lira_offline_auc"]["retrain"].value - 0.5) < 0.2  # never saw forget or test

    calls: list[int] = []
    real_fit = lira_offline.fit
    monkeypatch.setattr(lira_offline, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    fresh = EvalContext(prep.dataset, prep.splits, {"original": prep.original.model, "retrain": prep.oracle.model},
                        seed=prep.seed, run=prep.eval_ctx.run)
    again = evaluate(fresh, ["lira_offline_auc"], roles=("retrain",))["lira_offline_auc"]["retrain"]
    assert calls == [] and again.value == res["lira_offline_auc"]["retrain"].value  # loaded, deterministic


def test_missing_run_info(prep):
    ctx = EvalContext(prep.dataset, prep.splits, {"retrain": prep.oracle.model})
    v = evaluate(ctx, ["lira_offline_auc"], roles=("retrain",))["lira_offline_auc"]["retrain"]
    assert v.value is None and "model_spec, recipe, store" in v.reason
