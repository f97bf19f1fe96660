"""The recsys task: BPR loss and its seeded negatives (known answers), the expected-BPR example loss, the pair-only
training path agreeing with the full-row loss, reproducible training, and a request end to end on a tiny set."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from expunge import api
from expunge.data.batches import Batches
from expunge.data.interactions import interactions_dataset, synthetic_interactions
from expunge.tasks import get_task
from expunge.train.loop import TrainRecipe, fit
from expunge.train.oracle import model_spec_for

TASK = get_task("recsys")
RECIPE = TrainRecipe(epochs=15, batch_size=128, optimizer="adam", lr=5e-3)


def tiny():
    users, items = synthetic_interactions(n_users=60, n_items=80, seed=1)
    return interactions_dataset("tiny-recsys", users, items, item_names=[str(i) for i in range(80)], n_users=60)


def test_bpr_loss_known_answer_with_seeded_negatives() -> None:
    scores = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
    targets = torch.tensor([0, 1])
    torch.manual_seed(3)
    neg = torch.randint(3, (2,))
    expected = np.mean([math.log1p(math.exp(float(scores[r, neg[r]] - scores[r, targets[r]]))) for r in range(2)])
    torch.manual_seed(3)
    assert float(TASK.loss(scores, targets)) == pytest.approx(expected, rel=1e-6)


def test_pair_path_equals_full_row_loss_and_example_loss_is_expected_bpr() -> None:
    ds = tiny()
    model = model_spec_for(ds, "mf").build(seed=0)
    x, y = ds.train.x[:50], ds.train.y[:50]
    torch.manual_seed(7)
    fast = TASK.batch_loss(model, (x, y))
    torch.manual_seed(7)
    full = TASK.loss(model(x), y)
    assert float(fast.detach()) == pytest.approx(float(full.detach()), rel=1e-5)
    # equal scores: every negative ties, softplus(0) = ln 2 for each j != i
    assert TASK.example_losses(np.zeros((2, 5)), np.array([0, 3])) == pytest.approx([math.log(2)] * 2)
    # one negative scoring 1 above and one 1 below the positive: (softplus(1) + softplus(-1)) / 2
    expected = (math.log1p(math.e) + math.log1p(math.exp(-1))) / 2
    assert TASK.example_losses(np.array([[0.0, 1.0, -1.0]]), np.array([0]))[0] == pytest.approx(expected)


def test_targets_must_be_item_indices() -> None:
    with pytest.raises(ValueError, match="item index"):
        TASK.targets(np.array([0.5, 1.0]))
    assert TASK.targets(np.array([0, 2])).dtype == torch.int64


def test_training_with_sampled_negatives_is_reproducible() -> None:
    ds = tiny()
    spec = model_spec_for(ds, "mf")
    weights = []
    for _ in range(2):
        m = spec.build(seed=0)
        fit(m, Batches(ds.train.x, ds.train.y, batch_size=128, seed=5), RECIPE, seed=5, loss_fn=TASK.batch_loss)
        weights.append(m.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    m = spec.build(seed=0)
    fit(m, Batches(ds.train.x, ds.train.y, batch_size=128, seed=6), RECIPE, seed=6, loss_fn=TASK.batch_loss)
    assert not torch.equal(m.state_dict()["users.weight"], weights[0]["users.weight"])


def test_request_end_to_end_owner_is_user(store) -> None:  # type: ignore[no-untyped-def]
    ds = tiny()
    prep = api.prepare(ds, "mf", "owners:3", seed=0, store=store, recipe=RECIPE, progress=False)
    forgotten_users = np.unique(ds.train.owners[prep.splits.forget])
    assert len(forgotten_users) == 3
    assert not np.isin(ds.train.owners[prep.splits.retain], forgotten_users).any()  # every interaction of them
    base = prep.baseline
    assert base["recall20_forget"]["original"].value > base["recall20_forget"]["retrain"].value
    record, _ = api.unlearn(prep, "finetune", {"optimizer": "adam", "lr": 3e-3, "epochs": 1})
    assert record.task == "recsys" and record.metrics["recall20_test"] is not None


@pytest.mark.slow
def test_cli_runs_a_recsys_request(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "EXPUNGE_CACHE": str(tmp_path), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "expunge.cli.main", "unlearn", "--task", "recsys", "--data",
                          "recsys-synth", "--model", "mf", "--forget", "users:edge:0.05", "--method", "reverse_bpr",
                          "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode in (0, 3), res.stderr
    record = json.loads(res.stdout)
    assert record["task"] == "recsys" and record["forget"] == "users:edge:0.05"
    assert record["metrics"]["recall20_forget"] < record["original"]["recall20_forget"]
