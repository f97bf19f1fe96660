from __future__ import annotations

import torch

from expunge.methods.random_label import other_labels
from expunge.protocols.pipeline import run_step


def test_new_labels_always_differ_and_cover_other_classes():
    y = torch.randint(0, 10, (5000,), generator=torch.Generator().manual_seed(0))
    y2 = other_labels(y, 10, torch.Generator().manual_seed(1))
    assert (y2 != y).all() and y2.min() >= 0 and y2.max() <= 9
    counts = torch.bincount(y2[y == 3], minlength=10)
    assert counts[3] == 0 and (counts[[0, 1, 2, 4, 5, 6, 7, 8, 9]] > 0).all()


def test_forgets_and_keeps_utility(prepared_class3):
    record, _ = run_step(prepared_class3, "random_label", {"epochs": "3"}, save=False)
    assert record.metrics["forget_acc"] < 0.3
    assert record.metrics["retain_acc"] > 0.9
