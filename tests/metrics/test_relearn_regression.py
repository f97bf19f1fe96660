"""relearn_steps and the Anamnesis Index on a regression task: the loss criterion (forget loss back down to
(1 + α)·the Original's), as Deep Regression Unlearning's ``metrics.py`` adapts them."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from expunge import api
from expunge.metrics.base import evaluate
from expunge.metrics.relearn import ALPHA, relearn_time
from expunge.protocols.pipeline import Prepared
from expunge.store import ArtifactStore
from expunge.tasks import get_task


def test_relearn_time_counts_steps_until_the_loss_is_low_enough():
    model = nn.Linear(2, 1)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    x, y = torch.randn(64, 2), torch.full((64,), 0.05)  # start: squared error 0.0025 everywhere
    res = relearn_time(model, x, y, 5e-4, seed=0, task=get_task("regression"))
    assert not res["capped"] and res["steps"] > 0
    assert res["loss_start"] == pytest.approx(0.0025) and res["loss_end"] <= 5e-4 and "acc_start" not in res
    done = relearn_time(model, x, y, 1.0, seed=0, task=get_task("regression"))  # already below the target
    assert done["steps"] == 0 and not done["capped"]
    assert float(model.bias.detach()) == 0.0  # the evaluated model is never touched (private copy)
    capped = relearn_time(model, x, y, 0.0, seed=0, task=get_task("regression"))  # unreachable: the cap, a bound
    assert capped["capped"] and capped["steps"] == capped["cap"] == 100


@pytest.fixture(scope="module")
def prepared(session_store: ArtifactStore) -> Prepared:
    return api.prepare("diabetes", "mlp", "random:0.1", seed=0, store=session_store, progress=False)


def test_roles_on_diabetes(prepared: Prepared):
    ctx = prepared.eval_ctx.with_model("unlearned", copy.deepcopy(prepared.original.model))
    res = evaluate(ctx, ["relearn_steps", "ain"])
    steps = {r: res["relearn_steps"][r] for r in ("unlearned", "original", "retrain")}
    assert steps["original"].value == 0.0 and steps["unlearned"].value == 0.0  # the Original is its own target
    d = steps["retrain"].details
    assert steps["retrain"].value > 0 and d["loss_start"] > d["target"]
    forget_mse_o = ctx.task.example_losses(ctx.logits("original", "forget"), ctx.labels("forget")).mean()
    assert d["target"] == pytest.approx((1 + ALPHA) * forget_mse_o)
    assert res["ain"]["retrain"].value == 1.0 and res["ain"]["unlearned"].value == 0.0  # nothing removed
