"""hard-forget scenario: memorisation proxy, top-k splits, and the registered scenario end to end on blobs/mlp."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from expunge.data.datasets import from_arrays
from expunge.data.request import ForgetRequest
from expunge.errors import InvalidForgetRequest
from expunge.metrics.base import EvalContext
from expunge.scenarios.base import SCENARIOS, get_scenario
from expunge.scenarios.hard_forget import hard_forget_splits, memorisation_scores
from expunge.store import ArtifactStore
from expunge.train.loop import TrainRecipe


class Table(torch.nn.Module):
    def __init__(self, table: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("t", torch.as_tensor(table, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.t[x[:, 0].long()]


def small_dataset(n_train: int = 10, n_test: int = 4):
    return from_arrays("tab", x_train=np.arange(n_train, dtype=np.float32)[:, None], y_train=np.zeros(n_train),
                       x_test=np.arange(n_train, n_train + n_test, dtype=np.float32)[:, None],
                       y_test=np.zeros(n_test), class_names=("a", "b"))


def test_scores_and_top_k():
    ds = small_dataset()
    splits = ForgetRequest("ids", ids=(1, 3, 5, 7)).resolve(ds)
    # loss under O: -log p; under R larger for ids 5 and 7 (memorised), equal for 1 and 3
    p_o = np.full(14, 0.9)
    p_r = p_o.copy()
    p_r[[5, 7]] = [0.1, 0.3]
    to_logits = lambda p: np.log(np.c_[p, 1 - p])  # noqa: E731
    ctx = EvalContext(ds, splits, {"original": Table(to_logits(p_o)), "retrain": Table(to_logits(p_r))})
    s = memorisation_scores(ctx)
    np.testing.assert_allclose(s, [0.0, 0.0, np.log(0.9 / 0.1), np.log(0.9 / 0.3)], atol=1e-12)
    hard = hard_forget_splits(ds, splits, s, 2)
    assert hard.forget_ids.tolist() == [5, 7] and hard.extra["k"] == 2 and hard.extra["pool"] == splits.request.spec
    assert 1 in ds.train.ids[hard.retain] and hard.request.kind == "ids"
    tie = hard_forget_splits(ds, splits, np.zeros(4), 1)
    assert tie.forget_ids.tolist() == [1]  # ties: lower id first
    with pytest.raises(InvalidForgetRequest):
        hard_forget_splits(ds, splits, s, 5)
    with pytest.raises(ValueError, match="needs the retrain"):
        memorisation_scores(EvalContext(ds, splits, {"original": Table(to_logits(p_o))}))


def test_registered_scenario_end_to_end(tmp_path):
    assert "hard-forget" in SCENARIOS
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    x = (rng.standard_normal((80, 2)) * 1.5 + np.where(y[:, None] == 0, -1.0, 1.0)).astype(np.float32)
    tr, te = np.r_[0:30, 40:70], np.r_[30:40, 70:80]
    ds = from_arrays("blob2", x_train=x[tr], y_train=y[tr], x_test=x[te], y_test=y[te], class_names=("a", "b"))
    scen = get_scenario("hard-forget", {"pool": "random:0.3", "k": 5})
    setting = scen.prepare(ds, "mlp", store=ArtifactStore(tmp_path), recipe=TrainRecipe(epochs=5, batch_size=16),
                           metrics=["forget_acc"], progress=False)
    prep = setting.steps[0]
    assert prep.splits.forget.size == 5 and setting.info["k"] == 5 and setting.info["pool"] == "random:0.3"
    assert setting.info["score_min"] >= setting.info["pool_score_median"]  # the top 5 are above the pool median
    records = scen.run(setting, "finetune", {"epochs": 1}, metrics=["forget_acc"], save=False)
    assert records[0].extra["scenario"] == "hard-forget" and records[0].extra["scenario_info"]["k"] == 5
