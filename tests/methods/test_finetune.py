from __future__ import annotations

from expunge.methods.base import RunContext, get_method
from expunge.protocols.pipeline import run_step
from expunge.protocols.runner import run_method


def test_finetune_reads_only_retain_and_lowers_retain_loss(prepared_random):
    prep = prepared_random
    ctx = RunContext(seed=0)
    res = run_method(get_method("finetune", {"epochs": "2", "lr": "0.01"}), prep.original.model, prep.dataset,
                     prep.splits, ctx)
    assert res.access["forget_seen"] == 0 and res.access["retain_seen"] == 2 * prep.splits.retain.size
    losses = res.notes["epoch_losses"]
    assert losses[1] <= losses[0] * 1.05


def test_finetune_keeps_utility(prepared_class3):
    record, _ = run_step(prepared_class3, "finetune", {"epochs": "3"}, save=False)
    assert record.metrics["retain_acc"] > 0.9 and record.metrics["test_acc"] > 0.8
