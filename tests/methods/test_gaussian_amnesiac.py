"""Gaussian fine-tuning (Tarun et al., ICML 2023): forget targets become draws of N(mean, std) of all training
targets, then the model is fine-tuned on the relabelled training set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from expunge import api
from expunge.methods.base import RunContext, get_method
from expunge.methods.gaussian_amnesiac import gaussian_targets
from expunge.protocols.pipeline import Prepared
from expunge.protocols.runner import run_method
from expunge.store import ArtifactStore


@pytest.fixture(scope="module")
def prepared(session_store: ArtifactStore) -> Prepared:
    return api.prepare("diabetes", "mlp", "random:0.1", seed=0, store=session_store, progress=False)


def test_draws_follow_the_targets_mean_and_std_per_output():
    y = torch.stack([torch.linspace(0, 10, 101), torch.linspace(-1, 1, 101)], dim=1)
    raw = gaussian_targets(y, 20000, seed=3)
    assert raw.shape == (20000, 2) and raw.dtype == y.dtype
    draws = raw.double()
    assert np.allclose(draws.mean(0), y.double().mean(0), atol=0.05 * y.double().std(0))
    assert np.allclose(draws.std(0), y.double().std(0), rtol=0.03)  # ddof 1, as the notebook's pandas std
    assert torch.equal(gaussian_targets(y, 5, seed=3), gaussian_targets(y, 5, seed=3))
    assert not torch.equal(gaussian_targets(y, 5, seed=3), gaussian_targets(y, 5, seed=4))
    assert gaussian_targets(torch.arange(6.0), 4, seed=0).shape == (4,)  # one output: shape (n,)


def test_forget_predictions_move_toward_the_population_mean(prepared: Prepared):
    record, model = api.unlearn(prepared, "gaussian_amnesiac", {"epochs": 10, "batch_size": 32}, save=False)
    assert record.metrics["forget_mse"] > record.original["forget_mse"]
    assert record.metrics["retain_mse"] <= record.original["retain_mse"] + 0.1
    tr = prepared.dataset.train
    xf = tr.x[prepared.splits.forget]
    mu = float(tr.y.mean())
    with torch.no_grad():
        before = (prepared.original.model.eval()(xf).reshape(-1) - mu).abs().mean()
        after = (model.eval()(xf).reshape(-1) - mu).abs().mean()
    assert after < before


def test_relabelling_is_seeded_and_reads_forget_and_retain(prepared: Prepared):
    outs = []
    for seed in (0, 0, 1):
        ctx = RunContext(seed=seed, model_spec=prepared.spec, recipe=prepared.recipe, store=prepared.store)
        res = run_method(get_method("gaussian_amnesiac"), prepared.original.model, prepared.dataset, prepared.splits,
                         ctx)
        outs.append(res.notes["relabel_mean"])
        assert res.access["forget_seen"] >= prepared.splits.forget.size
        assert res.access["retain_seen"] >= prepared.splits.retain.size
    assert outs[0] == outs[1] != outs[2]


def test_defaults_are_the_notebook_s():
    p = get_method("gaussian_amnesiac").params
    assert (p.epochs, p.lr, p.optimizer, p.batch_size, p.loss, p.weight_decay) == (1, 1e-3, "adam", 256, "l1", 0.0)
