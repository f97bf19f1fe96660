"""Classification: integer class labels, cross-entropy, top-1 accuracy.

Parity criteria (the gaps a method must close to count as indistinguishable from the Retrain on tier-0 measures):
|Δ forget accuracy| ≤ 0.02, |Δ test accuracy| ≤ 0.02 and |Δ loss-MIA AUC| ≤ 0.05 — the bounds the project's method-zoo
tables have used since their first run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from expunge.tasks.base import Task, register_task

LOSS_CLIP = 100.0


@register_task
class Classification(Task):
    name = "classification"
    summary = "integer class labels; cross-entropy loss; accuracy"
    headline_metrics = ("forget_acc", "retain_acc", "test_acc", "mia_loss_auc", "js_to_retrain_forget")
    parity_criteria: ClassVar[Mapping[str, float]] = {"forget_acc": 0.02, "test_acc": 0.02, "mia_loss_auc": 0.05}

    def targets(self, y: Any) -> torch.Tensor:
        arr = np.asarray(y)
        if arr.ndim != 1:
            raise ValueError(f"classification labels must be one integer per example (shape (n,)), got {arr.shape}")
        if arr.size and not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError("classification labels must be integers")
        return torch.as_tensor(arr.astype(np.int64))

    def num_outputs(self, targets: torch.Tensor, num_classes: int) -> int:
        return num_classes

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, targets)

    def example_losses(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Cross-entropy per example in float64, clipped to [0, 100] as the loss attacks of
        :mod:`expunge.metrics.functional.mia` do (a collapsed softmax would otherwise give inf)."""
        z = torch.as_tensor(np.asarray(outputs, dtype=np.float64))
        y = torch.as_tensor(np.asarray(targets, dtype=np.int64).reshape(-1))
        if not len(y):
            return np.zeros(0)
        return np.clip(F.cross_entropy(z, y, reduction="none").numpy(), 0.0, LOSS_CLIP)
