"""Classification: integer class labels, cross-entropy, top-1 accuracy.

Parity criteria (the gaps a method must close to count as indistinguishable from the Retrain on tier-0 measures):
|Δ forget accuracy| ≤ 0.02, |Δ test accuracy| ≤ 0.02 and |Δ loss-MIA AUC| ≤ 0.05 — the bounds the project's method-zoo
tables have used since their first run.

Per-example criteria, judged on random and owners requests (:mod:`expunge.verdict`), where the Original is usually
within the tier-0 tolerances of the Retrain (the population criteria have no power):

* ``ulira_auc`` (U-LiRA, Hayes et al., arXiv 2403.01218): |Δ| ≤ 0.05, the loss-MIA's AUC tolerance — one bound for
  one kind of number; an AUC's standard error on ~150 forget vs ~150 held-out targets (digits' random 10%) is about
  0.03, so 0.05 is ~1.7 standard errors: smaller would fail exact retraining on noise at CPU sizes.
* ``klom_p95_forget`` (KLoM, Georgiev et al., arXiv 2410.23232), **one-sided**: unlearned − retrain ≤ 0.5 nats, where
  the Retrain row is the Retrain-vs-Retrain value (N independent retrains vs the N oracles: the small-N bias of the
  binned KL is in it, so the tolerance is absolute). With N = 8–16 margins per side, 20 bins and the 1e-5 floor, a
  shift of every example's margin distribution by one standard deviation raises the p95 by 0.9–1.0 nats over
  same-distribution samples (simulated, ``tests/metrics/functional/test_klom.py``); 0.5 nats is half of that. At
  N = 4 the p95 saturates near 10.5 nats even between retrains (over 5% of the examples' two sets of 4 margins share
  no bin), so the Original sits on the floor and the criterion has no power: the verdict says so.
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
    per_example_criteria: ClassVar[Mapping[str, float]] = {"ulira_auc": 0.05, "klom_p95_forget": 0.5}
    per_example_kinds = frozenset({"random", "owners"})
    one_sided_criteria = frozenset({"klom_p95_forget"})
    # the NeurIPS'23 challenge's scores: a column only on pages of grids that ran them (tier 2, N seeded runs)
    page_metrics = ("neurips23_forget_score", "neurips23_final_score")

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
        """Cross-entropy per example in float64, clipped to [0, 100] as the loss attacks of the metric spec do (a
        collapsed softmax would otherwise give inf).

        Computed in NumPy with exactly the operations of :func:`expunge.metrics.functional.mia.ce_loss` (max-shifted
        log-softmax), so the loss attacks give bit-identical numbers whether they call it or this; torch's
        ``cross_entropy`` differs from it in the last bits (≈ 1e-15), which can reorder near-tied losses."""
        z = np.asarray(outputs, dtype=np.float64)
        y = np.asarray(targets, dtype=np.int64).reshape(-1)
        if not len(y):
            return np.zeros(0)
        if z.ndim != 2 or len(z) != len(y):
            raise ValueError(f"classification outputs must be (n, classes) for {len(y)} labels, got {z.shape}")
        shifted = z - np.max(z, axis=1, keepdims=True)
        log_p = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
        return np.clip(-log_p[np.arange(len(y)), y], 0.0, LOSS_CLIP)
