"""Tier-2 metrics (U-LiRA, NeurIPS'23 ε-score, KLoM) on a tiny digits/mlp problem: values in range, resumable
through the store (a second evaluation trains nothing), retrain beats doing nothing, missing run info → None."""

from __future__ import annotations

from dataclasses import replace

import pytest

from expunge.api import prepare
from expunge.methods.base import RunContext, get_method
from expunge.metrics.base import METRICS, EvalContext, Tier, evaluate, select_metrics
from expunge.protocols.pipeline import Prepared
from expunge.protocols.runner import run_method
from expunge.shadows import batched as batched_mod
from expunge.train import oracle as oracle_mod
from expunge.train.loop import TrainRecipe

TINY = TrainRecipe(epochs=2, batch_size=64, optimizer="adam", lr=3e-3)
# The tier-2 metrics that re-run the method (the privacy onion, ulira_retain_auc, does not: tested on its own below).
TIER2 = [n for n, c in METRICS.items() if c.tier == Tier.GOLD and "method" in c.run_needs]
ULIRA = [n for n in TIER2 if METRICS.get(n).family == "ulira"]
# SSD dampens only parameters whose forget importance exceeds alpha x their full-set importance: none at alpha=1e30,
# so it returns the original unchanged (0 epochs of fine-tuning, the old stand-in, is refused since epochs >= 1)
DO_NOTHING = ("ssd", {"alpha": 1e30})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    from expunge.store import ArtifactStore

    store = ArtifactStore(tmp_path_factory.mktemp("tier2-store"))
    return prepare("digits", "mlp", "random:0.1", seed=0, store=store, recipe=TINY, progress=False)


def method_ctx(prep: Prepared, name: str, params: dict | None = None, **tier2) -> EvalContext:
    m = get_method(name, params)
    ctx = RunContext(seed=prep.seed, model_spec=prep.spec, recipe=prep.recipe, store=prep.store)
    res = run_method(m, prep.original.model, prep.dataset, prep.splits, ctx, original_key=prep.original.key)
    ectx = prep.eval_ctx.with_model("unlearned", res.model)
    ectx.run = replace(ectx.run, method=m.name, method_params=m.params.to_dict())
    ectx.extras["tier2"] = tier2
    return ectx


def test_registered_gold_and_opt_in():
    assert {METRICS.get(n).family for n in TIER2} >= {"ulira", "neurips23", "klom"} and len(ULIRA) == 4
    assert not {c.name for c in select_metrics(tier=1)} & set(TIER2)  # only an explicit tier 2 selects them


def test_missing_run_info_gives_none_with_reason(tiny):
    bare = EvalContext(tiny.dataset, tiny.splits, {"unlearned": tiny.original.model})
    res = evaluate(bare, TIER2, roles=("unlearned",))
    for name in TIER2:
        v = res[name]["unlearned"]
        assert v.value is None and "run info lacks" in v.reason and "method" in v.reason, name
    # the prepared context knows spec/recipe/store but not the method
    res = evaluate(tiny.eval_ctx, ULIRA, roles=("original",))
    assert res["ulira_auc"]["original"].value is None and "method" in res["ulira_auc"]["original"].reason


def test_bad_shadow_count_is_a_reason_not_a_crash(tiny):
    ctx = method_ctx(tiny, *DO_NOTHING, shadows=3)
    v = evaluate(ctx, ["ulira_auc"], roles=("unlearned",))["ulira_auc"]["unlearned"]
    assert v.value is None and "even" in v.reason


def test_ulira_in_range_and_resumable(tiny, monkeypatch):
    ctx = method_ctx(tiny, "finetune", {"epochs": 1}, shadows=4)
    first = evaluate(ctx, ULIRA)
    for name in ULIRA:
        for role in ("unlearned", "original", "retrain"):
            v = first[name][role]
            assert v.value is not None and 0.0 <= v.value <= 1.0, (name, role, v.reason)
    auc = first["ulira_auc"]["unlearned"]
    assert auc.details["n_shadows"] == 4 and auc.details["variance"] == "global"  # K < 64
    assert auc.details["queries"] == ("identity",) and auc.details["n_dropped"] == 0  # trained without flips
    assert auc.details["n_forget"] == tiny.splits.forget.size and auc.details["n_heldout"] > 0
    assert first["ulira_balanced_acc"]["unlearned"].value >= 0.5
    assert auc.details["info"]["cost"]["models_to_train"] == 4 and auc.details["info"]["shadows_trained"] == 4

    def forbidden(*args, **kwargs):
        raise AssertionError("a cached tier-2 evaluation must not train or unlearn")

    monkeypatch.setattr(batched_mod, "train_models", forbidden)
    monkeypatch.setattr("expunge.protocols.runner.run_method", forbidden)
    again = evaluate(ctx.with_model("unlearned", ctx.models["unlearned"]), ULIRA)  # a new context: no memo
    for name in ULIRA:
        for role in ("unlearned", "original", "retrain"):
            assert again[name][role].value == first[name][role].value
    info = again["ulira_auc"]["unlearned"].details["info"]
    assert info["shadows_trained"] == 0 and info["unlearning_runs_cached"] == 4
    assert info["cost"]["models_to_train"] == 0 and info["cost"]["unlearning_runs"] == 0


def test_epsilon_score_retrain_beats_doing_nothing(tiny, monkeypatch):
    names = ["neurips23_forget_score", "neurips23_final_score"]
    retrain = evaluate(method_ctx(tiny, "retrain", models=4), names)
    # the N oracles are shared: the next method retrains none of them
    monkeypatch.setattr(oracle_mod, "fit", lambda *a, **k: pytest.fail("oracles must come from the cache"))
    nothing = evaluate(method_ctx(tiny, *DO_NOTHING, models=4), names)
    f_nothing, f_retrain = nothing[names[0]]["unlearned"], retrain[names[0]]["unlearned"]
    assert f_nothing.value == 0.0  # N identical models: point masses vs spread oracles -> ε = 50 everywhere
    assert f_retrain.value is not None and f_retrain.value > f_nothing.value
    d = f_retrain.details
    assert d["reduced"] is True and d["n_models"] == 4 and len(d["neurips23_epsilon"]) == tiny.splits.forget.size
    assert d["seeds"] == [0, 1, 2, 3] and 0.8 < d["ra_ratio"] < 1.2 and 0.8 < d["ta_ratio"] < 1.2
    assert retrain[names[1]]["unlearned"].value == pytest.approx(f_retrain.value * d["ra_ratio"] * d["ta_ratio"])
    assert retrain[names[0]]["original"].value is None and "unlearned role" in retrain[names[0]]["original"].reason


@pytest.mark.slow
def test_klom_retrain_is_closer_to_oracles_than_doing_nothing(tiny):
    """On a class request doing nothing keeps the forget margins far from the oracles'. (With N = 4 and 20 bins
    the per-example KLoM saturates near ln(0.25/1e-5) when the two samples share no bin, so compare means.)"""
    prep = prepare("digits", "mlp", "class:3", seed=0, store=tiny.store, recipe=TINY, progress=False)
    names = ["klom_p95_forget", "klom_p95_test"]
    nothing = evaluate(method_ctx(prep, *DO_NOTHING, models=4), names, roles=("unlearned",))
    retrain = evaluate(method_ctx(prep, "retrain", models=4), names, roles=("unlearned",))
    n, r = nothing["klom_p95_forget"]["unlearned"], retrain["klom_p95_forget"]["unlearned"]
    assert n.value is not None and r.value is not None and 0 <= r.value <= n.value
    assert r.details["mean"] < n.details["mean"] - 1.0
    assert {"p50", "p95", "p99", "mean"} <= set(r.details) and r.details["n_models"] == 4
    assert set(r.details["other_splits"]) == {"retain", "test"}


def test_functional_package_reexports_every_public_function():
    import importlib
    import inspect
    import pkgutil

    import expunge.metrics.functional as fn
    from expunge.metrics.functional import epsilon_score, klom, mia_auc, ulira

    assert {epsilon_score.__name__, ulira.__name__, klom.__name__, mia_auc.__name__} <= set(fn.__all__)
    assert callable(fn.klom) and callable(fn.accuracy)  # the functions, not the same-named modules
    for info in pkgutil.iter_modules(fn.__path__):
        mod = importlib.import_module(f"expunge.metrics.functional.{info.name}")
        for name, obj in vars(mod).items():
            if not name.startswith("_") and inspect.isfunction(obj) and obj.__module__ == mod.__name__:
                assert name in fn.__all__, f"{info.name}.{name} not re-exported"
                assert getattr(fn, name) is obj or name in dir(fn), name


def test_stored_run_through_evaluate_run_and_cli(tiny):
    """`expunge evaluate RUN --tier 2 --shadows K` reaches the metrics; the run info comes from the manifest."""
    import json

    from typer.testing import CliRunner

    from expunge.cli.main import app
    from expunge.evaluation import evaluate_run
    from expunge.protocols.pipeline import run_step

    rec, _ = run_step(tiny, "finetune", {"epochs": 1}, save=True)
    res = evaluate_run(rec.unlearned_key, store=tiny.store, metrics=["ulira_auc"],
                       extras={"tier2": {"shadows": 4}})
    assert 0.0 <= res.metrics["ulira_auc"] <= 1.0 and res.retrain["ulira_auc"] is not None
    out = CliRunner().invoke(app, ["evaluate", rec.unlearned_key, "--store", str(tiny.store.root), "--metrics",
                                   "ulira_auc", "--shadows", "4", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["metrics"]["ulira_auc"] == res.metrics["ulira_auc"]  # same shadows and runs, from the cache
    assert "U-LiRA: 0 model(s) to train" in out.stderr  # the cost estimate, on stderr


def test_privacy_onion_needs_no_method_and_do_nothing_equals_before(tiny, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the retain-set LiRA uses the plain shadows: no unlearning runs")

    assert METRICS.get("ulira_retain_auc").tier == Tier.GOLD
    ctx = method_ctx(tiny, *DO_NOTHING, shadows=4)
    monkeypatch.setattr("expunge.protocols.runner.run_method", forbidden)
    res = evaluate(ctx, ["ulira_retain_auc"])["ulira_retain_auc"]
    for role in ("unlearned", "original", "retrain"):
        assert res[role].value is not None and 0.0 <= res[role].value <= 1.0, (role, res[role].reason)
    # doing nothing: "after" is exactly "before" (same model, same calibration and targets)
    assert res["unlearned"].value == res["original"].value
    d = res["unlearned"].details
    assert d["n_retained_targets"] == tiny.splits.forget.size and d["n_heldout"] > 0 and d["n_shadows"] == 4
    assert res["unlearned"].se is not None and res["unlearned"].se > 0
    # the prepared context has no method at all, and the metric still has a value
    no_method = tiny.eval_ctx
    assert no_method.run.method is None
    no_method.extras = {"tier2": {"shadows": 4}}
    bare = evaluate(no_method, ["ulira_retain_auc"], roles=("original",))["ulira_retain_auc"]["original"]
    assert bare.value == res["original"].value


def test_klom_baseline_rows_are_retrain_vs_retrain_and_doing_nothing(tiny):
    """KLoM's Retrain row is the `retrain` method's KLoM (N independent retrains vs the N oracles: the noise floor)
    and its Original row is doing nothing's (the N originals): known answers, computed with the request's baseline,
    which names no method."""
    base = tiny.eval_ctx.with_model("unlearned", tiny.original.model)
    base.extras = {"tier2": {"models": 2}}
    rows = evaluate(base, ["klom_p95_forget"], roles=("original", "retrain"))["klom_p95_forget"]
    assert base.run.method is None and rows["original"].value is not None and rows["retrain"].value is not None
    retrain = evaluate(method_ctx(tiny, "retrain", models=2), ["klom_p95_forget"], roles=("unlearned",))
    nothing = evaluate(method_ctx(tiny, *DO_NOTHING, models=2), ["klom_p95_forget"], roles=("unlearned",))
    assert rows["retrain"].value == retrain["klom_p95_forget"]["unlearned"].value
    assert rows["original"].value == nothing["klom_p95_forget"]["unlearned"].value
    assert rows["retrain"].details["n_models"] == 2


def test_a_runs_record_carries_ulira_rows_of_the_original_and_the_retrain(tiny):
    """U-LiRA scores every model against shadows unlearned by the method under test, so the request's baseline
    (computed before any method) cannot give its Original and Retrain rows: the run computes them with its method,
    and the sizes given to prepare (extras) reach them."""
    from expunge.api import unlearn

    prep = prepare("digits", "mlp", "random:0.1", seed=0, store=tiny.store, recipe=TINY, progress=False,
                   metrics=["ulira_auc", "forget_acc"], extras={"tier2": {"shadows": 2}})
    assert prep.baseline["ulira_auc"]["original"].value is None  # no method yet
    record, _ = unlearn(prep, "finetune", {"epochs": 1}, metrics=["ulira_auc", "forget_acc"])
    assert all(isinstance(v["ulira_auc"], float) for v in (record.metrics, record.original, record.retrain))
    assert record.reasons.get("ulira_auc", {}).get("original") is None
