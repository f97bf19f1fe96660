"""Reverse BPR (MMRecUN): the issue's test — it drops the forgotten items' ranks for their users below sampled
negatives while retain Recall@20 stays — and the properties of its loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from expunge import api
from expunge.data.interactions import interactions_dataset, synthetic_interactions
from expunge.methods.reverse_bpr import reverse_bpr_loss
from expunge.metrics.functional.ranking import item_rank_percentiles
from expunge.metrics.ranking import score_matrix
from expunge.train.loop import TrainRecipe
from expunge.train.oracle import model_spec_for

RECIPE = TrainRecipe(epochs=30, batch_size=128, optimizer="adam", lr=5e-3)


@pytest.fixture(scope="module")
def prep(tmp_path_factory):  # type: ignore[no-untyped-def]
    from expunge.store import ArtifactStore

    users, items = synthetic_interactions(n_users=80, n_items=100, seed=2)
    ds = interactions_dataset("tiny-recsys-rbpr", users, items, item_names=[str(i) for i in range(100)], n_users=80)
    return api.prepare(ds, "mf", "random:0.05", seed=0, store=ArtifactStore(tmp_path_factory.mktemp("s")),
                       recipe=RECIPE, progress=False)


def forget_percentiles(prep, model) -> np.ndarray:  # type: ignore[no-untyped-def]
    ctx = prep.eval_ctx.with_model("unlearned", model)
    x = prep.dataset.train.x.numpy()
    f, r = x[prep.splits.forget], x[prep.splits.retain]
    return item_rank_percentiles(score_matrix(ctx, "unlearned"), f[:, 0], f[:, 1], r[:, 0], r[:, 1])


def test_reverse_bpr_drops_forgotten_items_ranks(prep) -> None:  # type: ignore[no-untyped-def]
    before = forget_percentiles(prep, prep.original.model)
    record, model = api.unlearn(prep, "reverse_bpr", {"epochs": 15})
    after = forget_percentiles(prep, model)
    assert np.median(before) < 0.1           # the Original ranks its training items near the top
    assert np.median(after) > 0.5            # below a uniformly drawn negative for most forgotten interactions
    assert after.mean() > before.mean() + 0.4
    assert record.metrics["recall20_forget"] < record.original["recall20_forget"]
    assert record.metrics["recall20_retain"] >= record.original["recall20_retain"] - 0.05  # utility kept


def test_alpha_zero_is_forward_bpr_only(prep) -> None:  # type: ignore[no-untyped-def]
    _, model = api.unlearn(prep, "reverse_bpr", {"alpha": 0.0, "epochs": 1})
    after = forget_percentiles(prep, model)
    assert np.median(after) < 0.2  # without the reverse term nothing pushes the forget set down


def test_reverse_loss_is_bpr_with_roles_swapped() -> None:
    users, items = synthetic_interactions(n_users=10, n_items=12, seed=0)
    ds = interactions_dataset("t", users, items, item_names=[str(i) for i in range(12)], n_users=10)
    model = model_spec_for(ds, "mf").build(seed=0)
    with torch.no_grad():
        model.users.weight.zero_()
    x, y = ds.train.x[:8], ds.train.y[:8]
    assert float(reverse_bpr_loss(model, x, y).detach()) == pytest.approx(math.log(2))  # all scores 0: ln 2 whatever j
