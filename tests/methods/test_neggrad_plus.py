from __future__ import annotations

import torch

from expunge.methods.base import RunContext, get_method
from expunge.protocols.runner import run_method
from expunge.store.artifacts import state_hash
from expunge.train.loop import cross_entropy_loss, make_optimizer, train_loop

SGD = {"epochs": "1", "lr": "0.05", "momentum": "0.9", "weight_decay": "0", "batch_size": "64",
       "clip_grad_norm": "none"}


def test_beta_one_is_finetuning_on_the_same_retain_batches(prepared_class3):
    prep = prepared_class3
    res = run_method(get_method("neggrad_plus", {**SGD, "beta": "1.0"}), prep.original.model, prep.dataset,
                     prep.splits, RunContext(seed=4))
    # the same retain batches (seed 4) with plain CE
    from copy import deepcopy

    from expunge.data.access import DataAccess, UnlearningData

    model = deepcopy(prep.original.model)
    data = UnlearningData(prep.dataset, prep.splits, DataAccess.RETAIN, seed=4)
    opt = make_optimizer(model.parameters(), "sgd", lr=0.05, momentum=0.9, weight_decay=0.0)
    train_loop(model, data.retain_loader(64), cross_entropy_loss, opt, epochs=1)
    for p, q in zip(res.model.parameters(), model.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)


def test_beta_zero_only_ascends_on_forget(prepared_class3):
    prep = prepared_class3
    res = run_method(get_method("neggrad_plus", {**SGD, "beta": "0.0"}), prep.original.model, prep.dataset,
                     prep.splits, RunContext(seed=4))
    assert state_hash(res.model) != state_hash(prep.original.model)
    tr = prep.dataset.train
    x, y = tr.x[prep.splits.forget], tr.y[prep.splits.forget]
    with torch.no_grad():
        acc_before = (prep.original.model(x).argmax(1) == y).float().mean()
        acc_after = (res.model(x).argmax(1) == y).float().mean()
    assert acc_after < acc_before
