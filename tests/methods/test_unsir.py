"""unsir: noise optimisation raises CE on the forgotten class and leaves the (eval-mode) model untouched."""

from __future__ import annotations

import copy

import pytest
import torch

from expunge.data.access import DataAccess
from expunge.methods.base import RunContext, get_method
from expunge.methods.unsir import NOTEBOOK, ClassForgettingOnly, Unsir, optimise_noise
from expunge.models import ModelSpec
from expunge.protocols.runner import run_method
from expunge.store.artifacts import state_hash


def test_noise_optimisation_increases_ce_and_leaves_the_model_unchanged(prepared_class3):
    model = copy.deepcopy(prepared_class3.original.model).train()
    before = state_hash(model)
    init = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    _, ces = optimise_noise(model, init, 3, steps=10, lr=0.1, lam=0.1)
    assert ces[-1] > ces[0]
    assert state_hash(model) == before and model.training  # mode restored
    assert all(p.requires_grad for p in model.parameters()) and all(p.grad is None for p in model.parameters())


def test_noise_is_optimised_in_eval_mode_so_batchnorm_statistics_do_not_drift():
    model = ModelSpec("resnet", (1, 8, 8), 10).build(seed=0).train()  # the reference's bug: BN stats move
    before = state_hash(model)
    optimise_noise(model, torch.randn(16, 1, 8, 8), 2, steps=3, lr=0.1, lam=0.1)
    assert state_hash(model) == before


def test_reads_class_ids_and_retain_subset_never_forget_images():
    assert Unsir.access == DataAccess.CLASS_IDS | DataAccess.RETAIN_SUBSET


def test_random_request_is_refused(prepared_random):
    prep = prepared_random
    with pytest.raises(ClassForgettingOnly, match="class request"):
        run_method(get_method("unsir"), prep.original.model, prep.dataset, prep.splits, RunContext(seed=0))


def test_forgets_a_class_with_the_notebook_preset(prepared_class3):
    prep = prepared_class3
    res = run_method(get_method("unsir", NOTEBOOK), prep.original.model, prep.dataset, prep.splits,
                     RunContext(seed=0))
    assert res.access["forget_seen"] == 0 and res.notes["n_noise"] == 256 * NOTEBOOK["noise_batches"]
    tr = prep.dataset.train
    with torch.no_grad():
        acc = {k: float((res.model(tr.x[pos]).argmax(1) == tr.y[pos]).float().mean())
               for k, pos in (("forget", prep.splits.forget), ("retain", prep.splits.retain))}
    assert acc["forget"] < 0.3 and acc["retain"] > 0.6
