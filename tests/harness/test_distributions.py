"""Per-example summaries for the report: known answers on a model whose per-example losses are chosen by hand, the
regression case, and end to end on a tiny digits grid — baselines stored once per request, scenario steps each
summarised, and a failing computation that never fails its cell."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from expunge.data.datasets import from_arrays
from expunge.data.request import ForgetRequest
from expunge.harness import distributions
from expunge.harness.config import parse_config
from expunge.harness.distributions import cell_distributions, quantile_summary, summaries
from expunge.harness.grid import expand
from expunge.harness.results import ResultStore
from expunge.harness.run import SequentialExecutor, run_grid
from expunge.metrics.base import EvalContext


class Echo(nn.Module):
    """Outputs its input: each example's logits are written into the data, so every loss is known."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def logits_with_loss(losses: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """3-class logits whose cross-entropy at ``labels`` is ``losses``: 0 at the label, z = log(e^t − 1) at the other
    of classes 0/1, −60 at class 2 (adds e^−60 ≈ 1e−26 to the sum: invisible at 6 digits). Correct iff t < log 2."""
    out = np.full((len(losses), 3), -60.0)
    z = np.log(np.expm1(losses))
    for i, (t, y) in enumerate(zip(z, labels, strict=True)):
        out[i, y], out[i, 1 - y] = 0.0, t
    return out.astype(np.float32)


# forget = the 101 training examples of class 1, losses 0.50, 0.51, ..., 1.50 (correct: the 20 below log 2);
# retain = 50 examples of class 0 (loss 0.1); test = 100 of class 0 then 100 of class 1, losses 0.10, 0.11, ..., 2.09
# (correct: the first 60, all of class 0); class 2 has no example anywhere.
FORGET_T = 0.5 + 0.01 * np.arange(101)
TEST_T = 0.1 + 0.01 * np.arange(200)
TEST_Y = np.repeat([0, 1], 100)


@pytest.fixture(scope="module")
def ctx() -> EvalContext:
    y_train = np.concatenate([np.ones(101, dtype=np.int64), np.zeros(50, dtype=np.int64)])
    x_train = np.concatenate([logits_with_loss(FORGET_T, y_train[:101]), logits_with_loss(np.full(50, 0.1),
                                                                                          y_train[101:])])
    ds = from_arrays("echo", x_train=x_train, y_train=y_train, x_test=logits_with_loss(TEST_T, TEST_Y), y_test=TEST_Y,
                     class_names=("zero", "one", "two"))
    splits = ForgetRequest.parse("class:1").resolve(ds, seed=0)
    return EvalContext(ds, splits, {"original": Echo()}, seed=0)


def test_the_loss_percentiles_are_the_known_losses(ctx: EvalContext) -> None:
    """Percentile k of n sorted values sits at position k(n − 1)/100: the forget set's 101 losses are its percentiles
    exactly; the test set's 200 give 0.1 + 0.0199 k; the matched test side (class 1's 100) 1.1 + 0.0099 k."""
    mia = summaries(ctx, "original")["mia_loss"]
    forget, test, matched = (mia["sets"][s] for s in ("forget", "test", "test_matched"))
    assert (forget["n"], test["n"], matched["n"]) == (101, 200, 100)
    assert forget["q"] == pytest.approx(FORGET_T, abs=2e-6)
    assert test["q"] == pytest.approx(0.1 + 0.0199 * np.arange(101), abs=2e-6)
    assert matched["q"] == pytest.approx(1.1 + 0.0099 * np.arange(101), abs=2e-6)
    assert forget["mean"] == pytest.approx(1.0, abs=1e-6) and test["mean"] == pytest.approx(1.095, abs=1e-6)
    # the very feature mia_loss_auc attacks
    assert np.percentile(ctx.task.example_losses(ctx.logits("original", "forget"), ctx.labels("forget")), 50) == \
        pytest.approx(forget["q"][50], rel=1e-6)


def test_the_per_class_accuracies_are_the_known_ones(ctx: EvalContext) -> None:
    acc = summaries(ctx, "original")["class_acc"]
    assert acc["classes"] == ["zero", "one", "two"] and acc["forget_classes"] == [1]
    assert acc["test"] == [pytest.approx(0.6), 0.0, None]  # class 2 absent: None, never NaN
    assert acc["n_test"] == [100, 100, 0]
    assert acc["forget"] == [None, pytest.approx(20 / 101, abs=1e-6), None] and acc["n_forget"] == [0, 101, 0]


def test_quantile_summary_edge_cases() -> None:
    assert quantile_summary(np.array([])) == {"n": 0, "mean": None, "q": None}
    s = quantile_summary(np.array([1.0, np.inf]))  # an overflowing squared error
    assert s["mean"] is None and s["q"][-1] is None  # strict JSON: no inf, no NaN
    assert all(v is None or math.isfinite(v) for v in s["q"])
    assert quantile_summary(np.array([1 / 3]))["q"] == [0.333333] * 101  # 6 significant digits


def test_a_collapsed_model_gives_the_reason_and_a_failure_the_error(ctx: EvalContext,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    class NaNs(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full_like(x, math.nan)

    out = summaries(ctx.with_model("unlearned", NaNs()), "unlearned")
    assert "not finite" in out["mia_loss"]["reason"] and "not finite" in out["class_acc"]["reason"]
    monkeypatch.setitem(distributions._COMPUTE, "class_acc", lambda c, r: 1 / 0)
    out = summaries(ctx, "original")
    assert out["class_acc"] == {"error": "ZeroDivisionError: division by zero"} and "sets" in out["mia_loss"]


def test_regression_stores_the_squared_errors_and_no_classes() -> None:
    rng = np.random.default_rng(0)
    x_train, x_test = rng.normal(size=(40, 1)).astype(np.float32), rng.normal(size=(20, 1)).astype(np.float32)
    ds = from_arrays("reg", x_train=x_train, y_train=np.zeros(40), x_test=x_test, y_test=np.zeros(20),
                     task="regression")
    splits = ForgetRequest.parse("random:0.25").resolve(ds, seed=0)
    out = summaries(EvalContext(ds, splits, {"original": Echo()}, seed=0), "original")
    assert out["class_acc"] == {"reason": "a regression task has no classes"}
    assert set(out["mia_loss"]["sets"]) == {"forget", "test"}  # random request: no matched test side
    assert out["mia_loss"]["sets"]["test"]["q"][-1] == pytest.approx(float(np.max(x_test[:, 0] ** 2)), rel=1e-5)


def test_cell_distributions_never_raises() -> None:
    out = cell_distributions(object(), [], None)  # not a Prepared, not a Setting
    assert out["distributions"] == [] and out["distributions_error"].startswith("AttributeError")


TINY: dict[str, Any] = {"name": "tiny", "datasets": ["digits"], "models": ["mlp"], "recipe": {"epochs": 2},
                        "requests": [{"forget": "class:3"}], "methods": ["finetune", "ssd"], "seeds": [0]}


def kinds(rs: ResultStore) -> dict[str, int]:
    out: dict[str, int] = {}
    for _, role, kind in rs.distributions():
        out[f"{role}/{kind}"] = out.get(f"{role}/{kind}", 0) + 1
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One artifact store for the grid tests: the Original and oracle of class:3 are trained once."""
    return str(tmp_path_factory.mktemp("store"))


@pytest.mark.slow
def test_a_grid_stores_each_run_and_each_request_baseline_once(tmp_path: Path, store: str) -> None:
    """Two methods on one request: 2 × 2 unlearned rows, the Original's and Retrain's 2 kinds once; a two-step
    sequential stream: each step's model (loaded from the store) and each step's request baselines."""
    with ResultStore(tmp_path / "out") as rs:
        run_grid(expand(parse_config(TINY)), rs, SequentialExecutor(), store_root=store)
        assert kinds(rs) == {"unlearned/mia_loss": 2, "unlearned/class_acc": 2, "original/mia_loss": 1,
                             "original/class_acc": 1, "retrain/mia_loss": 1, "retrain/class_acc": 1}
        finetune = next(r for r in rs.runs() if r["method"] == "finetune")
        mine = rs.run_distributions(finetune["run_key"], finetune["request_key"])
        assert sorted(mine) == ["original", "retrain", "unlearned"]
        assert mine["retrain"]["class_acc"]["test"][3] == 0.0  # the Retrain never saw a 3
        assert mine["original"]["mia_loss"]["sets"]["forget"]["n"] == finetune_forget_n(rs)
    seq = {**TINY, "requests": [{"scenario": "sequential", "params": {"k": 2}}], "methods": ["finetune"]}
    with ResultStore(tmp_path / "seq") as rs:
        run_grid(expand(parse_config(seq)), rs, SequentialExecutor(), store_root=store)
        assert kinds(rs) == {f"{role}/{kind}": 2 for role in ("unlearned", "original", "retrain")
                             for kind in ("mia_loss", "class_acc")}
        runs = rs.runs()
        steps = [rs.run_distributions(r["run_key"], r["request_key"])["unlearned"]["mia_loss"] for r in runs]
        assert [s["sets"]["forget"]["n"] for s in steps] == [r["forget_n"] for r in seq_forget_sizes(rs)]


def finetune_forget_n(rs: ResultStore) -> int:
    return next(rec["request"]["n_forget"] for rec in rs.records() if rec["method"] == "finetune")


def seq_forget_sizes(rs: ResultStore) -> list[dict[str, int]]:
    return [{"forget_n": rec["request"]["n_forget"]} for rec in rs.records()]


def test_a_failing_distribution_computation_does_not_fail_the_cell(tmp_path: Path, store: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: loading or pairing the step models raises; the cell is stored ok with its record and
    metrics, and the error as the run's one distributions row."""

    def boom(*args: Any) -> Any:
        raise RuntimeError("injected distributions failure")

    monkeypatch.setattr(distributions, "_step_models", boom)
    with ResultStore(tmp_path / "out") as rs:
        summary = run_grid(expand(parse_config({**TINY, "methods": ["finetune"]})), rs, SequentialExecutor(),
                           store_root=store)
        (run,) = rs.runs()
        assert (summary.ok, summary.failed, run["status"]) == (1, 0, "ok")
        assert rs.records()[0]["metrics"]["forget_acc"] is not None
        assert rs.distributions() == {(run["run_key"], "unlearned", "error"):
                                      {"error": "RuntimeError: injected distributions failure"}}
