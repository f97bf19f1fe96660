"""Regression end to end on `diabetes`: the task seam carries a second task through requests, the oracle, methods,
metrics, records, reports and the CLI — and every method that cannot is refused before anything is trained."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from expunge import api
from expunge.errors import InvalidHyperparameter
from expunge.methods.base import METHODS, RunContext, get_method
from expunge.protocols.pipeline import Prepared
from expunge.protocols.runner import run_method
from expunge.report import print_table
from expunge.store import ArtifactStore
from expunge.store.artifacts import state_hash
from expunge.tasks import UnsupportedTask, get_task
from expunge.train.oracle import DEFAULT_RECIPES

REGRESSION_METHODS = sorted(n for n in METHODS.names() if "regression" in METHODS.get(n).tasks)
OTHER_METHODS = sorted(set(METHODS.names()) - set(REGRESSION_METHODS))


def run_cli(args: list[str], cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EXPUNGE_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "expunge.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("regression-cli-cache")


@pytest.fixture(scope="module")
def prepared_diabetes(session_store: ArtifactStore) -> Prepared:
    """diabetes / mlp, forget random:0.1, seed 0, the dataset's default recipe (≈ 1 s of training)."""
    return api.prepare("diabetes", "mlp", "random:0.1", seed=0, store=session_store, progress=False)


BASE = ["unlearn", "--data", "diabetes", "--model", "mlp", "--forget", "random:0.1"]


def test_cli_unlearn_gives_a_record_shaped_like_a_classifier_s(cache: Path, prepared_random: Prepared):
    out = run_cli([*BASE, "--task", "regression", "--method", "finetune", "--json"], cache)
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout)
    classifier, _ = api.unlearn(prepared_random, "finetune", {"epochs": 1}, save=False)
    assert set(rec) == set(classifier.to_json())  # the same top-level keys
    assert rec["task"] == "regression" and rec["dataset"] == "diabetes" and rec["method"] == "finetune"
    headline = set(get_task("regression").headline_metrics)
    for role in ("metrics", "original", "retrain", "gap_to_retrain"):
        assert headline <= set(rec[role]) and "forget_acc" not in rec[role], role
    assert rec["retrain"]["mse_to_retrain_forget"] == 0.0
    assert rec["original"]["forget_mse"] < rec["retrain"]["forget_mse"]  # the Original remembers its forget set


def test_cli_retrain_with_the_oracle_s_seeds_has_zero_gap_on_every_metric(cache: Path):
    out = run_cli([*BASE, "--method", "retrain", "--param", "same_seeds_as_oracle=true", "--json"], cache)
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout)
    assert rec["cache"]["original_hit"] and rec["cache"]["oracle_hit"]  # trained by the test above
    gaps = {k: v for k, v in rec["gap_to_retrain"].items() if v is not None}
    assert set(get_task("regression").headline_metrics) <= set(gaps)
    assert gaps == dict.fromkeys(gaps, 0.0)
    assert rec["metrics"]["weight_l2_to_retrain"] == 0.0


def test_cli_refuses_a_classification_method_before_training(tmp_path: Path):
    out = run_cli([*BASE, "--method", "ssd"], tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: method 'ssd' supports classification tasks, not "
                                                   "regression"), out.stderr
    assert not list(tmp_path.rglob("*.safetensors"))  # nothing trained, nothing stored


@pytest.mark.parametrize("name", OTHER_METHODS)
def test_every_other_method_is_refused_everywhere(name: str, prepared_diabetes: Prepared):
    with pytest.raises(UnsupportedTask, match="not regression"):
        api.resolve_params(name, dataset="diabetes", model="mlp", forget="random:0.1", task="regression")
    with pytest.raises(UnsupportedTask, match="not regression"):  # also through the runner, for any other caller
        run_method(get_method(name), prepared_diabetes.original.model, prepared_diabetes.dataset,
                   prepared_diabetes.splits, RunContext())


def test_the_regression_methods_are_those_of_the_issues():
    assert REGRESSION_METHODS == ["blindspot_regression", "finetune", "gaussian_amnesiac", "neggrad", "reset_finetune",
                                  "retrain"]


@pytest.mark.parametrize("name", REGRESSION_METHODS)
def test_regression_methods_run_deterministically_without_touching_the_original(name: str,
                                                                                  prepared_diabetes: Prepared):
    prep = prepared_diabetes
    before, hashes = state_hash(prep.original.model), []
    for _ in range(2):
        ctx = RunContext(seed=1, model_spec=prep.spec, recipe=prep.recipe, store=prep.store)
        res = run_method(get_method(name), prep.original.model, prep.dataset, prep.splits, ctx)
        assert all(torch.isfinite(p).all() for p in res.model.parameters())
        hashes.append(state_hash(res.model))
    assert hashes[0] == hashes[1] and state_hash(prep.original.model) == before


def test_neggrad_ascends_the_forget_mse_and_refuses_an_accuracy_stop(prepared_diabetes: Prepared):
    prep = prepared_diabetes
    record, _ = api.unlearn(prep, "neggrad", {"epochs": 20, "lr": 1e-3}, save=False)
    assert record.metrics["forget_mse"] > record.original["forget_mse"]
    with pytest.raises(InvalidHyperparameter, match=r"stop_at_forget_acc.*regression"):
        api.resolve_params("neggrad", dataset="diabetes", model="mlp", forget="random:0.1",
                           overrides={"stop_at_forget_acc": 0.5}, task="regression")
    with pytest.raises(InvalidHyperparameter, match="stop_at_forget_acc"):
        api.unlearn(prep, "neggrad", {"stop_at_forget_acc": 0.5}, save=False)
    # classification keeps the option
    params, _ = api.resolve_params("neggrad", dataset="digits", model="mlp", forget="random:0.1",
                                   overrides={"stop_at_forget_acc": 0.5}, task="classification")
    assert params.stop_at_forget_acc == 0.5


def test_finetune_lowers_the_retain_mse(prepared_diabetes: Prepared):
    record, model = api.unlearn(prepared_diabetes, "finetune", {"epochs": 20, "lr": 0.01}, save=False)
    assert record.metrics["retain_mse"] < 1.0 and record.method_access == "retain"
    x = prepared_diabetes.dataset.test.x[:5]
    assert tuple(model(x).shape) == (5, 1)  # the mlp on 1-D inputs of shape (10,): one output per example


def test_owners_and_ids_requests(session_store: ArtifactStore, tmp_path: Path):
    ds = api.load("diabetes")
    prep = api.prepare("diabetes", "mlp", "owners:3", seed=0, store=session_store, progress=False)
    owners = np.unique(ds.train.owners[prep.splits.forget])
    assert owners.size == 3 and prep.splits.forget.size == np.isin(ds.train.owners, owners).sum()
    record, _ = api.unlearn(prep, "finetune", {"epochs": 2}, save=False)
    assert record.forget.startswith("owners:") and record.metrics["forget_mse"] is not None
    ids = ds.train.ids[[1, 5, 8, 13, 21, 34, 55, 89, 144, 233]]
    path = tmp_path / "forget.txt"
    path.write_text("# ten training ids\n" + "\n".join(map(str, ids)) + "\n")
    prep = api.prepare("diabetes", "mlp", f"ids:{path}", seed=0, store=session_store, progress=False)
    assert prep.splits.forget_ids.tolist() == sorted(ids.tolist())
    record, _ = api.unlearn(prep, "neggrad", {}, save=False)
    assert record.request["n_forget"] == 10 and record.metrics["forget_mse"] is not None


def test_the_report_leads_with_the_regression_metrics(prepared_diabetes: Prepared, capsys: pytest.CaptureFixture):
    record, _ = api.unlearn(prepared_diabetes, "finetune", {"epochs": 2}, save=False)
    print_table([record], "finetune on diabetes")
    text = capsys.readouterr().out
    for name in get_task("regression").headline_metrics:
        assert name in text
    assert "forget_acc" not in text and "Original" in text and "Retrain" in text


def test_the_default_recipe_memorises(prepared_diabetes: Prepared):
    """The recipe's reason to exist (its comment in train/oracle.py): the Original clearly remembers its forget set."""
    assert "diabetes" in DEFAULT_RECIPES and prepared_diabetes.recipe == DEFAULT_RECIPES["diabetes"]
    o, r = prepared_diabetes.baseline["forget_mse"]["original"], prepared_diabetes.baseline["forget_mse"]["retrain"]
    assert r.value - o.value > 0.3 and prepared_diabetes.baseline["forget_mse"]["original"].se is not None


@pytest.mark.slow
def test_the_parity_criteria_pass_an_independent_retrain(session_store: ArtifactStore):
    """The calibration the regression task's docstring states: over seeds 0-11, the Original's forget MSE is always
    more than the tolerance from the Retrain's, and an independently seeded retrain is at parity on ≥ 10 seeds."""
    from expunge.verdict import judge

    tol = get_task("regression").parity_criteria
    at_parity = 0
    for seed in range(12):
        prep = api.prepare("diabetes", "mlp", "random:0.1", seed=seed, store=session_store, progress=False,
                           metrics=list(tol))
        record, _ = api.unlearn(prep, "retrain", {}, metrics=list(tol), save=False)
        assert abs(record.original["forget_mse"] - record.retrain["forget_mse"]) > tol["forget_mse"], seed
        at_parity += judge(record).at_parity
    assert at_parity >= 10


# ------------------------------------------------------------------------------------------------------ scenarios
@pytest.mark.parametrize("name", ["full-class", "sub-class", "corrective"])
def test_classification_scenarios_are_refused_before_training(name: str, tmp_path: Path):
    from expunge.errors import InvalidForgetRequest
    from expunge.scenarios.base import get_scenario

    with pytest.raises((UnsupportedTask, InvalidForgetRequest), match="regression"):
        get_scenario(name).prepare("diabetes", "mlp", store=ArtifactStore(tmp_path), progress=False)
    assert not list(tmp_path.rglob("*.safetensors"))


def test_random_owners_and_sequential_scenarios_run(session_store: ArtifactStore):
    from expunge.scenarios.base import get_scenario

    for name, params in (("random", {}), ("owners", {"n_owners": 3}), ("sequential", {"k": 2, "base": "random:0.05"})):
        sc = get_scenario(name, params)
        assert "regression" in sc.tasks
        setting = sc.prepare("diabetes", "mlp", store=session_store, progress=False, metrics=["forget_mse"])
        records = sc.run(setting, "finetune", {"epochs": 1}, metrics=["forget_mse"], save=False)
        assert all(r.task == "regression" and r.metrics["forget_mse"] is not None for r in records), name


def test_hard_forget_ranks_by_the_squared_error_gap():
    from expunge.data.datasets import from_arrays
    from expunge.data.request import ForgetRequest
    from expunge.metrics.base import EvalContext
    from expunge.scenarios.hard_forget import memorisation_scores

    x = np.arange(6, dtype=np.float32)[:, None]
    ds = from_arrays("line", x_train=x, y_train=np.arange(6.0), x_test=x[:2], y_test=np.zeros(2), task="regression")
    splits = ForgetRequest("ids", ids=(1, 3)).resolve(ds)
    models = {}
    for role, w in (("original", 1.0), ("retrain", 2.0)):  # ŷ = x vs ŷ = 2x: squared errors 0 vs x²
        models[role] = torch.nn.Linear(1, 1)
        with torch.no_grad():
            models[role].weight.fill_(w)
            models[role].bias.zero_()
    scores = memorisation_scores(EvalContext(ds, splits, models))
    np.testing.assert_allclose(scores, [1.0, 9.0])


def test_tuning_a_regression_dataset_is_refused_before_training(tmp_path: Path):
    from expunge.errors import ExpungeError
    from expunge.tune import tune

    with pytest.raises(ExpungeError, match="tuning on a regression dataset is not supported"):
        tune("diabetes", "mlp", "random", ["finetune"], n_trials=1, store=ArtifactStore(tmp_path))
    with pytest.raises(UnsupportedTask, match="'ssd'"):
        tune("diabetes", "mlp", "random", ["ssd"], n_trials=1, store=ArtifactStore(tmp_path))
    assert not list(tmp_path.rglob("*.safetensors"))
