"""amnesiac_relabel: the harness's relabelling "amnesiac" — random_label's algorithm with the harness budget."""

from __future__ import annotations

import torch

from expunge.methods.base import RunContext, get_method
from expunge.protocols.runner import run_method
from expunge.store.artifacts import state_hash

SAME = {"epochs": "1", "lr": "1e-3", "optimizer": "adam", "weight_decay": "0", "batch_size": "128"}


def _run(prep, name, params):
    return run_method(get_method(name, params), prep.original.model, prep.dataset, prep.splits, RunContext(seed=3))


def test_defaults_are_the_ssd_harness():
    p = get_method("amnesiac_relabel").params
    assert (p.epochs, p.lr, p.optimizer, p.batch_size, p.weight_decay) == (3, 1e-4, "adam", 128, 0.0)


def test_same_parameters_as_random_label_give_the_same_model(prepared_class3):
    a = _run(prepared_class3, "amnesiac_relabel", SAME)
    b = _run(prepared_class3, "random_label", SAME)
    assert state_hash(a.model) == state_hash(b.model) != state_hash(prepared_class3.original.model)


def test_forgets_a_class_and_keeps_retain(prepared_class3):
    prep = prepared_class3
    res = _run(prep, "amnesiac_relabel", {"lr": "1e-3"})
    tr = prep.dataset.train
    with torch.no_grad():
        acc = {k: float((res.model(tr.x[pos]).argmax(1) == tr.y[pos]).float().mean())
               for k, pos in (("forget", prep.splits.forget), ("retain", prep.splits.retain))}
    assert acc["forget"] < 0.3 and acc["retain"] > 0.9
