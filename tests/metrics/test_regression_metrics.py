"""Regression metrics on known answers; the loss attacks and weight distances on both tasks; classification's loss
attacks unchanged by going through the task (bit for bit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from expunge.data.datasets import from_arrays, load_dataset
from expunge.data.request import ForgetRequest, Splits
from expunge.metrics.base import METRICS, EvalContext, evaluate
from expunge.metrics.functional.mia import ce_loss, loss_lr_cv
from expunge.metrics.functional.regression import absolute_errors, mean_and_se, squared_differences, squared_errors
from expunge.models import ModelSpec
from expunge.tasks import get_task

REGRESSION_METRICS = ("forget_mse", "retain_mse", "test_mse", "forget_mae", "retain_mae", "test_mae",
                      "mse_to_retrain_forget", "mse_to_retrain_test")
LOSS_ATTACKS = ("mia_loss_auc", "mia_loss_acc", "mia_loss_auc_matched", "mufac_forgetting_score", "indiscernibility",
                "mia_loss_threshold_best", "mia_loss_threshold_yeom")


def affine(w: float, b: float) -> nn.Module:
    """ŷ = w·x + b on one feature, output shape (n, 1) like the mlp's."""
    m = nn.Linear(1, 1)
    with torch.no_grad():
        m.weight.fill_(w)
        m.bias.fill_(b)
    return m


@pytest.fixture(scope="module")
def toy_ctx() -> EvalContext:
    """y = x on six training points (forget ids 0 and 1) and test points x = 6, 7 with y = 6, 8."""
    x = np.arange(6, dtype=np.float32)[:, None]
    ds = from_arrays("line", x_train=x, y_train=np.arange(6.0), x_test=np.array([[6.0], [7.0]]),
                     y_test=np.array([6.0, 8.0]), task="regression")
    models = {"unlearned": affine(1, 0), "original": affine(2, 0), "retrain": affine(1, 1)}
    return EvalContext(ds, Splits.from_ids(ds, np.array([0, 1])), models)


def test_functional_known_answers():
    np.testing.assert_array_equal(squared_errors([[1.0], [3.0]], [0.0, 1.0]), [1.0, 4.0])
    np.testing.assert_array_equal(absolute_errors([[1.0], [3.0]], [0.0, 1.0]), [1.0, 2.0])
    np.testing.assert_array_equal(squared_errors([[1.0, 2.0]], [[0.0, 0.0]]), [2.5])  # mean over outputs
    np.testing.assert_array_equal(absolute_errors([[1.0, -3.0]], [[0.0, 0.0]]), [2.0])
    np.testing.assert_array_equal(squared_differences([[1.0], [2.0]], [[0.0], [4.0]]), [1.0, 4.0])
    assert mean_and_se([1.0, 4.0]) == pytest.approx((2.5, 1.5))  # s = 2.1213 (ddof 1), s/√2 = 1.5
    assert mean_and_se([]) == (None, None) and mean_and_se([3.0]) == (3.0, None)
    with pytest.raises(ValueError, match="differ in shape"):
        squared_differences([[1.0]], [[1.0, 2.0]])


@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=30), st.integers(0, 2**16))
def test_squared_errors_are_the_task_s_example_losses(y: list[float], seed: int):
    pred = np.random.default_rng(seed).normal(size=(len(y), 1))
    np.testing.assert_array_equal(squared_errors(pred, y), get_task("regression").example_losses(pred, np.array(y)))


def test_split_errors_known_answers(toy_ctx: EvalContext):
    res = evaluate(toy_ctx, REGRESSION_METRICS)
    v = {name: {role: mv.value for role, mv in by_role.items()} for name, by_role in res.items()}
    # unlearned ŷ = x: exact on train; test errors (0, −1)
    assert v["forget_mse"]["unlearned"] == 0.0 and v["retain_mse"]["unlearned"] == 0.0
    assert v["test_mse"]["unlearned"] == pytest.approx(0.5) and v["test_mae"]["unlearned"] == pytest.approx(0.5)
    # original ŷ = 2x: forget errors (0, 1); retain x = 2..5 errors (2, 3, 4, 5); test errors (6, 6)
    assert v["forget_mse"]["original"] == pytest.approx(0.5) and v["forget_mae"]["original"] == pytest.approx(0.5)
    assert v["retain_mse"]["original"] == pytest.approx(54 / 4) and v["retain_mae"]["original"] == pytest.approx(3.5)
    assert v["test_mse"]["original"] == pytest.approx(36.0)
    # retrain ŷ = x + 1: every training error 1; test errors (1, 0)
    assert v["forget_mse"]["retrain"] == pytest.approx(1.0) and v["test_mae"]["retrain"] == pytest.approx(0.5)
    assert res["forget_mse"]["original"].se == pytest.approx(0.5)  # s/√n of (0, 1)
    assert res["forget_mse"]["retrain"].se == 0.0 and res["forget_mse"]["retrain"].details == {"n": 2}
    # distance of the predictions to the Retrain's: unlearned is 1 off everywhere; the Retrain is 0 from itself
    assert v["mse_to_retrain_forget"]["unlearned"] == pytest.approx(1.0)
    assert v["mse_to_retrain_forget"]["original"] == pytest.approx((1 + 0) / 2)  # 2x vs x + 1 at x = 0, 1
    assert v["mse_to_retrain_test"]["original"] == pytest.approx((25 + 36) / 2)
    assert v["mse_to_retrain_forget"]["retrain"] == 0.0


def test_directions_and_tasks():
    for name in REGRESSION_METRICS:
        assert METRICS.get(name).tasks == frozenset({"regression"}), name
    assert METRICS.get("forget_mse").higher_is_better is None and METRICS.get("forget_mae").higher_is_better is None
    for name in ("retain_mse", "test_mse", "retain_mae", "test_mae", "mse_to_retrain_forget"):
        assert METRICS.get(name).higher_is_better is False, name
    for name in (*LOSS_ATTACKS, "weight_l2_to_original", "weight_l2_to_retrain", "relearn_steps"):
        assert {"classification", "regression"} <= METRICS.get(name).tasks, name  # graph/federated may add theirs
    for name in ("forget_acc", "nomus", "js_to_retrain_forget", "mia_eff_svc_conf_salun"):
        assert "classification" in METRICS.get(name).tasks and "regression" not in METRICS.get(name).tasks, name


def test_classification_metrics_say_why_they_are_none(toy_ctx: EvalContext):
    res = evaluate(toy_ctx, ["forget_acc", "js_to_retrain_forget"])
    for by_role in res.values():
        for mv in by_role.values():
            assert mv.value is None
            assert mv.reason.startswith("defined for classification") and mv.reason.endswith(
                "models; this is a regression task"), mv.reason


def test_evaluate_selects_the_task_s_metrics(toy_ctx: EvalContext):
    names = set(evaluate(toy_ctx.with_model("unlearned", affine(1, 0)), roles=("unlearned",)))
    assert set(REGRESSION_METRICS) <= names and set(LOSS_ATTACKS) <= names
    assert {"weight_l2_to_original", "weight_l2_to_retrain"} <= names
    assert all("regression" in METRICS.get(n).tasks for n in names)
    assert not names & {"forget_acc", "retain_acc", "test_acc", "js_to_retrain_forget", "nomus"}


def _untrained_ctx(dataset: str, spec: ModelSpec) -> EvalContext:
    ds = load_dataset(dataset)
    splits = ForgetRequest.parse("random:0.3").resolve(ds, seed=0)
    return EvalContext(ds, splits, {"original": spec.build(seed=1), "retrain": spec.build(seed=2)}, seed=0)


def test_loss_attacks_on_regression_use_the_squared_error():
    ctx = _untrained_ctx("diabetes", ModelSpec("mlp", (10,), 1))
    res = evaluate(ctx, ["mia_loss_auc", "mia_loss_acc"], roles=("original",))
    f = squared_errors(ctx.logits("original", "forget"), ctx.labels("forget"))
    t = squared_errors(ctx.logits("original", "test"), ctx.labels("test"))
    expected = loss_lr_cv(f, t, seed=0)
    assert res["mia_loss_auc"]["original"].value == expected["auc"]
    assert res["mia_loss_acc"]["original"].value == expected["acc"]
    yeom = evaluate(ctx, ["mia_loss_threshold_yeom"], roles=("original",))["mia_loss_threshold_yeom"]["original"]
    assert yeom.value is not None and 0.0 <= yeom.value <= 1.0


@given(st.integers(1, 12), st.integers(2, 10), st.floats(0.1, 300.0), st.integers(0, 2**16))
def test_classification_example_losses_are_ce_loss_bit_for_bit(n: int, classes: int, scale: float, seed: int):
    rng = np.random.default_rng(seed)
    z, y = rng.normal(scale=scale, size=(n, classes)), rng.integers(0, classes, n)
    ours = get_task("classification").example_losses(z, y)
    assert np.array_equal(ours, ce_loss(z, y)) and ours.min() >= 0.0 and ours.max() <= 100.0


def test_classification_loss_attack_values_are_unchanged():
    ctx = _untrained_ctx("digits", ModelSpec("mlp", (1, 8, 8), 10))
    res = evaluate(ctx, ["mia_loss_auc", "mia_loss_acc"], roles=("retrain",))
    f = ce_loss(ctx.logits("retrain", "forget"), ctx.labels("forget"))
    t = ce_loss(ctx.logits("retrain", "test"), ctx.labels("test"))
    expected = loss_lr_cv(f, t, seed=0)  # the attack on ce_loss, as before tasks existed
    assert res["mia_loss_auc"]["retrain"].value == expected["auc"]
    assert res["mia_loss_acc"]["retrain"].value == expected["acc"]


def test_classification_training_loss_is_f_cross_entropy():
    z, y = torch.randn(16, 10, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 10
    assert torch.equal(get_task("classification").loss(z, y), torch.nn.functional.cross_entropy(z, y))
