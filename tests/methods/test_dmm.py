"""dmm and its TRAK attribution: on a convex model TRAK's predicted margin changes track those of really retraining
without the removed examples; the method lowers the forgotten examples' margins as predicted, reads the features from
the store on the next request (one-off precompute), and refuses nothing it declared."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from expunge.data.batches import Batches
from expunge.methods._shared.trak import margins, predicted_margin_change, trak_features
from expunge.methods.base import RunContext, get_method
from expunge.protocols.runner import run_method


def fit_logistic(x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> nn.Module:
    """A linear classifier trained to its (L2-regularised, unique) optimum by full-batch L-BFGS."""
    torch.manual_seed(seed)
    model = nn.Linear(x.shape[1], 10)
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y, reduction="sum") + 0.5 * sum((p**2).sum()
                                                                                     for p in model.parameters())
        loss.backward()
        return loss

    opt.step(closure)
    return model


def test_trak_predicts_the_margin_changes_of_retraining_a_convex_model(digits) -> None:
    x, y = digits.train.x[:400].reshape(400, -1), digits.train.y[:400].long()
    model = fit_logistic(x, y)
    feats = trak_features(model, Batches(x, y, batch_size=50, shuffle=False), dim=256, seed=0)
    rng = np.random.default_rng(0)
    corrs = []
    for _ in range(3):
        removed = np.sort(rng.choice(400, size=40, replace=False))
        keep = np.setdiff1d(np.arange(400), removed)
        retrained = fit_logistic(x[keep], y[keep])
        with torch.no_grad():
            actual = margins(retrained(x), y) - margins(model(x), y)
        predicted = predicted_margin_change(feats, torch.arange(400), torch.as_tensor(removed))
        corrs.append(float(np.corrcoef(actual.numpy(), predicted.numpy())[0, 1]))
        assert float(predicted[removed].mean()) < 0 and float(actual[removed].mean()) < 0  # removal lowers margins
    assert min(corrs) > 0.5, corrs


def test_dmm_lowers_the_forgotten_margins_and_caches_its_precompute(prepared_random) -> None:
    prep = prepared_random
    ctx = RunContext(seed=prep.seed, model_spec=prep.spec, recipe=prep.recipe, store=prep.store)
    m = get_method("dmm", {"trak_dim": "64", "epochs": "5", "multiplier": "100"})  # single-model scores: scaled
    res = run_method(m, prep.original.model, prep.dataset, prep.splits, ctx, original_key=prep.original.key)
    x_f, y_f = prep.dataset.train.x[prep.splits.forget], prep.dataset.train.y[prep.splits.forget]
    with torch.no_grad():
        before, after = margins(prep.original.model(x_f), y_f).mean(), margins(res.model(x_f), y_f).mean()
    assert res.notes["predicted_forget_margin_change"] < 0 and after < before
    assert res.access["precompute_s"] > 0 and res.access["train_stats"][0].startswith("dmm_trak/")
    again = run_method(m, prep.original.model, prep.dataset, prep.splits, RunContext(
        seed=prep.seed, model_spec=prep.spec, recipe=prep.recipe, store=prep.store), original_key=prep.original.key)
    assert again.access["precompute_s"] == 0  # loaded from the store: one-off per Original
    assert all(torch.equal(a, b) for a, b in zip(again.model.parameters(), res.model.parameters(), strict=True))
