"""Tuning at equal budget: a 3-trial run writes a valid preset atomically, the objective is the mean tier-0 gap to the
retrain oracle on a validation request, every method gets the same budget, and presets load with --param on top."""

from __future__ import annotations

import functools
import json
import os
import statistics
import sys

import pytest
from typer.testing import CliRunner

import expunge.api as api
from expunge import presets
from expunge.methods.base import get_method
from expunge.methods.ssd import SSDParams
from expunge.scenarios.base import OBJECTIVE_METRICS, gap_objective, get_scenario
from expunge.tune import MIN_IMPROVEMENT, search_space, tune

pytest.importorskip("optuna")
METHODS = ["ssd", "neggrad"]
NAME = "digits/mlp/random"


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, session_store, fast_recipe):
    out = tmp_path_factory.mktemp("presets")
    run = tune("digits", "mlp", "random", METHODS, n_trials=3, seed=0, store=session_store, recipe=fast_recipe,
               presets_dir=out, check=False)
    assert not run.failures
    return out, run.path, run.results


@pytest.fixture
def only_tuned(tuned, monkeypatch, tmp_path):
    """Presets come from this test's folder only ($EXPUNGE_PRESETS), not from the ones shipped in the package."""
    monkeypatch.setenv(presets.ENV, str(tuned[0]))
    monkeypatch.setattr(presets, "PACKAGE_DIR", tmp_path)
    return tuned


@pytest.fixture(scope="module")
def evaluation(session_store, fast_recipe):
    """The evaluation request random:0.1 at seed 0, with only the objective's metrics (fast)."""
    return api.prepare("digits", "mlp", "random:0.1", seed=0, store=session_store, recipe=fast_recipe,
                              metrics=OBJECTIVE_METRICS, progress=False)


def test_preset_file_is_valid_and_complete(tuned):
    out, path, results = tuned
    assert path == out / "digits__mlp__random.json"
    data = json.loads(path.read_text())
    assert set(data) == set(METHODS)
    for res in results:
        entry = data[res.method]
        assert {"params", "objective", "n_trials", "tuned_at", "versions"} <= set(entry)
        assert {"optuna", "torch", "expunge"} <= set(entry["versions"])
        assert entry["objective"] == min(t["objective"] for t in res.trials)
        assert entry["default_objective"] == res.trials[0]["objective"]  # trial 0 = the method's defaults
        defaults = get_method(res.method).params.to_dict()
        assert all(res.trials[0]["values"][d.name] == defaults[d.name] for d in search_space(type(
            get_method(res.method).params)))
        assert 0.0 <= entry["objective"] <= entry["default_objective"] <= 1.0
        get_method(res.method, entry["params"])  # valid parameters
    assert [p.name for p in out.iterdir()] == ["digits__mlp__random.json"]  # no temp file left behind


def test_same_budget_for_every_method(tuned):
    _, path, results = tuned
    assert {r.n_trials for r in results} == {3} and {len(r.trials) for r in results} == {3}
    assert {e["n_trials"] for e in json.loads(path.read_text()).values()} == {3}


def test_objective_is_the_gap_on_a_validation_request(tuned, session_store, fast_recipe, evaluation):
    _, path, _ = tuned
    entry = json.loads(path.read_text())["ssd"]
    sc = get_scenario("random")
    st = sc.prepare("digits", "mlp", seed=0, store=session_store, recipe=fast_recipe, metrics=OBJECTIVE_METRICS,
                    progress=False, validation=True)
    (rec,) = sc.run(st, "ssd", entry["params"], metrics=OBJECTIVE_METRICS, save=False)
    by_hand = statistics.fmean(abs(rec.metrics[m] - rec.retrain[m]) for m in OBJECTIVE_METRICS)
    assert entry["objective"] == pytest.approx(by_hand) == pytest.approx(gap_objective([rec]))
    # another request than the evaluation one (seed + 1000), on the same Original
    assert st.steps[0].original.key == evaluation.original.key
    assert set(st.steps[0].splits.forget_ids) != set(evaluation.splits.forget_ids)
    assert entry["validation"]["requests"][0]["seed"] == 1000


def test_sub_class_objective_uses_the_matched_mia(make_record):
    """Known answer: the sub-class objective averages the matched MIA gap, the others the whole-test one."""
    rec = make_record(gap_to_retrain={"forget_acc": 0.1, "test_acc": 0.2, "mia_loss_auc": 0.9,
                                      "mia_loss_auc_matched": 0.3})
    assert get_scenario("sub-class").objective([rec]) == pytest.approx(0.2)
    assert get_scenario("full-class").objective([rec]) == pytest.approx(0.4)
    partial = make_record(gap_to_retrain={"forget_acc": 0.1, "test_acc": 0.2})
    assert get_scenario("sub-class").objective([partial]) is None


def test_write_is_atomic(tuned, monkeypatch):
    _, path, _ = tuned
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        presets.write_entries(path, {"ssd": {"params": {"alpha": 1.0}}})
    assert path.read_bytes() == before and len(list(path.parent.iterdir())) == 1


def test_preset_loads_and_param_overrides(only_tuned):
    _, path, _ = only_tuned
    tuned_ssd = json.loads(path.read_text())["ssd"]["params"]
    assert NAME in presets.available()
    p = presets.params_with_preset(SSDParams, NAME, "ssd", {})
    assert p.to_dict() == tuned_ssd
    q = presets.params_with_preset(SSDParams, NAME, "ssd", {"lam": "2.5"})
    assert q.lam == 2.5 and q.alpha == tuned_ssd["alpha"]
    with pytest.raises(presets.UnknownPreset, match=r"available: .*digits/mlp/random"):
        presets.params_with_preset(SSDParams, "digits/mlp/nope", "ssd", {})
    with pytest.raises(presets.UnknownPreset, match="no values for method 'finetune'; it has: neggrad, ssd"):
        presets.method_values(NAME, "finetune")


def test_unlearn_cli_uses_the_preset(only_tuned, monkeypatch, evaluation):
    from expunge.cli.main import app

    _, path, _ = only_tuned
    monkeypatch.setattr(api, "prepare", lambda *a, **k: evaluation)  # no retraining in this test
    monkeypatch.setattr(api, "run_step", functools.partial(api.run_step, metrics=OBJECTIVE_METRICS, save=False))

    def cli(*extra: str) -> dict:
        res = CliRunner().invoke(app, ["unlearn", "--model", "mlp", "--forget", "random:0.1", "--method", "ssd",
                                       *extra, "--json"])
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)

    tuned_alpha = json.loads(path.read_text())["ssd"]["params"]["alpha"]
    rec = cli("--preset", NAME, "--param", "lam=2.5")
    assert rec["params"]["alpha"] == tuned_alpha and rec["params"]["lam"] == 2.5
    assert rec["params_source"] == f"preset {NAME} + lam=2.5"
    # without --preset, the preset matching the request (digits/mlp, random -> the random scenario) is the default
    rec = cli()
    assert rec["params"]["alpha"] == tuned_alpha and rec["params_source"] == f"preset {NAME}"
    rec = cli("--paper-defaults")
    assert rec["params"]["alpha"] == SSDParams().alpha and rec["params_source"] == "paper defaults"


def test_unknown_preset_is_a_one_line_error(only_tuned, monkeypatch, capsys):
    from expunge.cli import main

    monkeypatch.setattr(sys, "argv", ["expunge", "unlearn", "--model", "mlp", "--method", "ssd", "--preset",
                                      "digits/mlp/nope"])
    with pytest.raises(SystemExit) as exit_info:
        main.main()  # the console entry point: user errors become one line on stderr, status 2
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert exit_info.value.code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: unknown preset 'digits/mlp/nope'") and "digits/mlp/random" in lines[0]


def test_shipped_presets_are_valid(monkeypatch):
    monkeypatch.delenv(presets.ENV, raising=False)
    for name in presets.available():
        entries = presets.read(name)
        assert len({e["n_trials"] for e in entries.values()}) == 1, f"{name}: unequal budgets"
        for method, entry in entries.items():
            get_method(method, presets.method_values(name, method))  # still valid parameters
            assert 0.0 <= entry["objective"] <= entry["default_objective"] <= 1.0, (name, method)
            gain = entry["default_objective"] - entry["objective"]
            assert gain == 0.0 or gain > MIN_IMPROVEMENT, f"{name} {method}: tuned values for a float-level tie"


@pytest.mark.parametrize("delta, keeps_defaults", [(2e-7, True), (0.01, False)])
def test_defaults_are_replaced_only_by_a_real_improvement(monkeypatch, delta, keeps_defaults):
    from types import SimpleNamespace

    import expunge.tune as tune_module

    calls = iter(range(100))  # trial 0 (the defaults) scores 0.5, every other trial 0.5 - delta
    monkeypatch.setattr(tune_module, "score", lambda *a, **k: (0.5 if next(calls) == 0 else 0.5 - delta, None))
    res = tune_module.tune_method(SimpleNamespace(objective_metrics=("forget_acc",)), None, "ssd", n_trials=3,
                                  metrics=("forget_acc",))
    assert (res.params == SSDParams().to_dict()) is keeps_defaults
    assert res.objective == (0.5 if keeps_defaults else 0.5 - delta) and res.default_objective == 0.5


def test_a_method_that_never_applies_is_skipped_not_preset(tuned, session_store, fast_recipe, monkeypatch, tmp_path):
    import expunge.tune as tune_module

    monkeypatch.setattr(tune_module, "score", lambda *a, **k: (tune_module.PENALTY, "ClassForgettingOnly: ..."))
    run = tune("digits", "mlp", "random", ["ssd"], n_trials=2, store=session_store, recipe=fast_recipe,
               presets_dir=tmp_path, check=False)
    assert not run.results and "no trial could be scored" in run.skipped["ssd"] and not run.failures
    assert not run.path.exists()


def test_fixed_fields_are_held_in_every_trial_and_recorded(session_store, fast_recipe, tmp_path):
    run = tune("digits", "mlp", "random", ["ssd"], n_trials=3, seed=0, store=session_store, recipe=fast_recipe,
               presets_dir=tmp_path, check=False, fixed={"ssd": {"lam": "2.5"}})
    (res,) = run.results
    assert [t["values"].get("lam") for t in res.trials] == [None] * 3  # not searched ...
    assert set(res.search_space) == {d.name for d in search_space(SSDParams)} - {"lam"}
    assert res.params["lam"] == 2.5 and res.fixed == {"lam": 2.5}  # ... but applied to every trial and the choice
    entry = json.loads(run.path.read_text())["ssd"]
    assert entry["fixed"] == {"lam": 2.5} and entry["params"]["lam"] == 2.5
    # trial 0 is the paper defaults with the fixed value applied: its objective is that run's
    sc = get_scenario("random")
    st = sc.prepare("digits", "mlp", seed=0, store=session_store, recipe=fast_recipe, metrics=OBJECTIVE_METRICS,
                    progress=False, validation=True)
    recs = sc.run(st, "ssd", SSDParams(lam=2.5), metrics=OBJECTIVE_METRICS, save=False)
    assert res.default_objective == pytest.approx(gap_objective(recs))


@pytest.mark.parametrize("fixed, match", [
    ({"ssd": {"alpha": "5", "lam": "1"}}, "every searched field"),
    ({"neggrad": {"lr": "0.1"}}, "not being tuned: neggrad"),
    ({"ssd": {"no_such_field": "1"}}, "no_such_field"),
])
def test_bad_fixed_values_fail_before_training(fixed, match, tmp_path, monkeypatch):
    import expunge.tune as tune_module

    monkeypatch.setattr(tune_module, "get_scenario", lambda *a, **k: pytest.fail("prepared before validating"))
    with pytest.raises(Exception, match=match):
        tune("digits", "mlp", "random", ["ssd"], n_trials=1, presets_dir=tmp_path, check=False, fixed=fixed)
    assert not list(tmp_path.iterdir())


def test_cli_fix_needs_method_name_and_value(monkeypatch, capsys):
    from expunge.cli import main

    monkeypatch.setattr(sys, "argv", ["expunge", "tune", "--methods", "ssd", "--fix", "lam=2"])
    with pytest.raises(SystemExit) as exit_info:
        main.main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--fix expects METHOD:NAME=VALUE" in err and "'lam=2'" in err
